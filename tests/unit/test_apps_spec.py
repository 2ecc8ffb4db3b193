"""The app spec for the apps people have (issue 10): WSGI/ASGI servers, build and release steps,
static files and shared dirs; the pure builders they feed (server argv, release env, Caddy site)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shipit.app import load_app_spec
from shipit.artifact import BuildError, build_step_env, run_build_steps, staged_files
from shipit.deploy import app_vars, render_release_env, web_commands
from shipit.errors import ValidationError
from shipit.modules.release import Static, site_content
from shipit.webserver import Bind, is_factory, missing_distributions, server_argv

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
BASE = "name: shop\ndomains: [shop.test]\n"


def spec_problems(tmp_path: Path, text: str) -> str:
    (tmp_path / "shipit.yml").write_text(BASE + text)
    with pytest.raises(ValidationError) as info:
        load_app_spec(tmp_path)
    return str(info.value)


# ---- server command -----------------------------------------------------------------------
def test_server_argv_for_each_server_and_bind() -> None:
    assert server_argv("gunicorn", "wsgi", "mysite.wsgi:application", Bind.tcp(8200), 3, threads=4) == (
        "gunicorn", "mysite.wsgi:application", "--bind", "127.0.0.1:8200", "--workers", "3",
        "--graceful-timeout", "20", "--threads", "4")
    assert server_argv("gunicorn", "wsgi", "a:app", Bind.unix("/run/a/web.sock"), 2)[2:4] == (
        "--bind", "unix:/run/a/web.sock")
    assert server_argv("uvicorn", "asgi", "a.main:app", Bind.tcp(8000), 2) == (
        "uvicorn", "a.main:app", "--host", "127.0.0.1", "--port", "8000", "--workers", "2",
        "--timeout-graceful-shutdown", "20", "--no-access-log")
    assert server_argv("uvicorn", "asgi", "a:app", Bind.unix("/run/a.sock"), 1)[2:4] == ("--uds", "/run/a.sock")
    asgi_gunicorn = server_argv("gunicorn", "asgi", "a:app", Bind.tcp(9000), 2)
    assert asgi_gunicorn[-2:] == ("--worker-class", "uvicorn_worker.UvicornWorker")
    # the socket systemd passes (a web slot's: Layout.web_bind)
    sock = Bind.systemd("/run/a/web-8000/web.sock")
    assert server_argv("uvicorn", "asgi", "a:app", sock, 2)[2:4] == ("--fd", "3")
    # gunicorn adopts systemd's socket by LISTEN_FDS; a --bind fd://3 too would adopt it twice
    assert server_argv("gunicorn", "wsgi", "a:app", sock, 2)[2:4] == ("--workers", "2")
    # a placeholder port (systemd's specifier) passes through as a word
    assert "127.0.0.1:%i" in server_argv("gunicorn", "wsgi", "a:app", Bind.tcp("%i"), 2)


def test_an_app_factory_is_called_by_the_server() -> None:
    """``mod:create_app()`` (Flask's app factory): gunicorn calls it as given, uvicorn is told
    --factory and given the bare name (uvicorn refuses call syntax)."""
    assert is_factory("shop:create_app()") and not is_factory("shop:app")
    assert server_argv("gunicorn", "wsgi", "shop:create_app()", Bind.tcp(8200), 2)[:2] == (
        "gunicorn", "shop:create_app()")
    assert server_argv("uvicorn", "asgi", "shop.main:make_app()", Bind.tcp(8000), 2)[:3] == (
        "uvicorn", "shop.main:make_app", "--factory")
    assert server_argv("gunicorn", "asgi", "shop.main:make_app()", Bind.tcp(8000), 2)[1] == "shop.main:make_app()"


def test_an_app_factory_survives_the_web_units_word_splitting() -> None:
    """The web unit runs ``sh -c 'exec $SHIPIT_WEB_<port>'``: the call stays one word."""
    import subprocess

    words = server_argv("gunicorn", "wsgi", "shop:create_app()", Bind.tcp(8200), 2)
    line = " ".join(words)
    out = subprocess.run(["/bin/sh", "-c", 'for w in $LINE; do printf "%s\\n" "$w"; done'],
                         env={"LINE": line, "PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
                         check=True).stdout
    assert tuple(out.splitlines()) == words


@pytest.mark.parametrize("args, message", [
    (("uvicorn", "wsgi", "a:app"), "does not serve 'wsgi'"),
    (("waitress", "wsgi", "a:app"), "does not serve"),
    (("gunicorn", "wsgi", "a:app(1)"), "module:attribute"),
    (("gunicorn", "wsgi", "a:app()()"), "module:attribute"),
    (("gunicorn", "wsgi", "a b:app"), "module:attribute"),
])
def test_server_argv_refuses(args: tuple[str, str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        server_argv(*args, Bind.tcp(8000), 2)
    with pytest.raises(ValueError, match="threads are gunicorn's"):
        server_argv("uvicorn", "asgi", "a:app", Bind.tcp(8000), 2, threads=4)
    with pytest.raises(ValueError, match="cannot be part"):
        server_argv("gunicorn", "wsgi", "a:app", Bind.unix("/tmp/a b.sock"), 2)


def test_missing_server_distributions() -> None:
    assert missing_distributions("wsgi", "gunicorn", ["Flask==3.1.3"]) == ["gunicorn"]
    assert missing_distributions("wsgi", "gunicorn", ["gunicorn==23.0.0"]) == []
    assert missing_distributions("asgi", "gunicorn", ["gunicorn==23.0.0", "uvicorn==0.3"]) == ["uvicorn-worker"]
    assert missing_distributions("asgi", "uvicorn", ["Uvicorn==0.30.0"]) == []


# ---- web: validation ------------------------------------------------------------------------
def test_wsgi_asgi_and_the_old_app_key_load(tmp_path: Path) -> None:
    (tmp_path / "shipit.yml").write_text(BASE + "web: {wsgi: mysite.wsgi:application, threads: 4}\n")
    spec = load_app_spec(tmp_path)
    assert (spec.interface, spec.server, spec.app_ref, spec.threads) == ("wsgi", "gunicorn", "mysite.wsgi:application", 4)
    (tmp_path / "shipit.yml").write_text(BASE + "web: {asgi: shop.main:app, server: gunicorn}\n")
    spec = load_app_spec(tmp_path)
    assert (spec.interface, spec.server) == ("asgi", "gunicorn")
    (tmp_path / "shipit.yml").write_text(BASE + "web: {wsgi: 'shop:create_app()'}\n")
    assert load_app_spec(tmp_path).app_ref == "shop:create_app()"
    (tmp_path / "shipit.yml").write_text(BASE + "web: {app: shop.main:app}\n")
    assert (load_app_spec(tmp_path).interface, load_app_spec(tmp_path).server) == ("asgi", "uvicorn")


@pytest.mark.parametrize("web, expected", [
    ("web: {wsgi: a:app, asgi: a:app}\n", "shipit.yml:3: web.wsgi: give one of asgi:, wsgi: or app:, not asgi and wsgi"),
    ("web: {workers: 2}\n", "shipit.yml:3: web: expected a mapping with the app, as {asgi: module:app}"),
    ("web: {wsgi: 'mysite.wsgi'}\n", "shipit.yml:3: web.wsgi: expected module:attribute of the WSGI app, e.g. "
                                     "mysite.wsgi:application, or module:factory() for an app factory"),
    ("web: {wsgi: 'shop:create_app(debug=True)'}\n", "shipit.yml:3: web.wsgi: expected module:attribute"),
    ("web:\n  wsgi: a:app\n  server: uvicorn\n", "shipit.yml:5: web.server: expected gunicorn to serve a WSGI app, "
                                                 "got 'uvicorn'"),
    ("web:\n  asgi: a:app\n  server: daphne\n", "shipit.yml:5: web.server: expected uvicorn or gunicorn to serve an "
                                                "ASGI app"),
    ("web:\n  asgi: a:app\n  threads: 4\n", "shipit.yml:5: web.threads: threads: is for WSGI apps served by gunicorn"),
    ("web:\n  wsgi: a:app\n  threads: 0\n", "shipit.yml:5: web.threads: expected a number of threads per worker"),
    ("web: wsgi\n", "shipit.yml:3: web: expected a mapping"),
])
def test_web_errors_name_the_key_and_the_accepted_forms(tmp_path: Path, web: str, expected: str) -> None:
    assert expected in spec_problems(tmp_path, web)


# ---- build, release, static, shared_dirs ------------------------------------------------------
def test_build_release_static_and_shared_dirs_load(tmp_path: Path) -> None:
    spec = load_app_spec(EXAMPLES / "django-app")
    assert spec.build == ("python manage.py collectstatic --noinput",)
    assert spec.release == ("python manage.py clearsessions",)
    assert (spec.static_url, spec.static_dir, spec.shared_dirs) == ("/static/", "staticfiles", ("media",))
    assert (spec.interface, spec.server) == ("wsgi", "gunicorn")
    flask = load_app_spec(EXAMPLES / "flask-app")
    assert (flask.interface, flask.threads, flask.shared_dirs, flask.static_dir) == ("wsgi", 4, ("data",), None)
    (tmp_path / "shipit.yml").write_text(BASE + "web: {app: a:app}\nbuild: npm ci && npm run build\n")
    assert load_app_spec(tmp_path).build == ("npm ci && npm run build",)  # one command may be a string


@pytest.mark.parametrize("text, expected", [
    ('build: [ok, "two\\nlines"]\n', "shipit.yml:4: build[1]: expected a one-line command"),
    ("release: {a: b}\n", "shipit.yml:4: release: expected a list of one-line commands, e.g. [python manage.py"),
    ("release: ['']\n", "release[0]: expected a one-line command"),
    ("static: staticfiles\n", "shipit.yml:4: static: expected {url: /static/, dir: staticfiles}"),
    ("static: {url: static, dir: staticfiles}\n", "static.url: expected a URL path prefix that starts and ends with /"),
    ("static: {url: /static/, dir: ../etc}\n", "static.dir: expected a directory relative to the app's source"),
    ("static: {url: /static/, dir: '/abs'}\n", "static.dir: expected a directory relative"),
    ("static: {url: /s/, dir: 'a b'}\n", "static.dir: expected a directory relative"),
    ("shared_dirs: media\n", "shipit.yml:4: shared_dirs: expected a list of directories, e.g. [media]"),
    ("shared_dirs: [media, media]\n", "shared_dirs[1]: 'media' is listed twice"),
    ("shared_dirs: [var, var/media]\n", "shared_dirs[1]: 'var/media' is listed twice or inside another shared dir"),
    ("shared_dirs: [.shipit]\n", "shared_dirs[0]: expected a directory relative"),
    ("shared_dirs: [venv]\n", "shared_dirs[0]: 'venv' is shipit's own"),
    ("shared_dirs: [media]\nstatic: {url: /m/, dir: media/static}\n", "static.dir: 'media/static' is under a shared dir"),
])
def test_build_release_static_and_shared_dirs_errors(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in spec_problems(tmp_path, "web: {app: a:app}\n" + text)


# ---- what the hosts get ---------------------------------------------------------------------------
def test_release_env_carries_the_server_command_of_each_slot(tmp_path: Path) -> None:
    spec = load_app_spec(EXAMPLES / "django-app")
    release = "20261202T130000Z-0123456789ab"
    commands = web_commands(spec, release, 3)
    assert set(commands) == {"SHIPIT_WEB_8200", "SHIPIT_WEB_8201"}
    # each slot serves on the socket its .socket unit passes as fd 3 (Layout.web_bind)
    assert commands["SHIPIT_WEB_8201"] == (f"/srv/mysite/releases/{release}/venv/bin/gunicorn mysite.wsgi:application "
                                           "--workers 3 --graceful-timeout 20")
    lines = render_release_env(spec, release, 3, source_on_path=True).splitlines()
    assert f'SHIPIT_WEB_8200="{commands["SHIPIT_WEB_8200"]}"' in lines
    assert f'PYTHONPATH="/srv/mysite/releases/{release}"' in lines and 'SHIPIT_WORKERS="3"' in lines
    app = app_vars(spec, 3, {}, release)
    assert app["static"] == {"url": "/static/", "dir": "staticfiles"} and app["release"] == ["python manage.py clearsessions"]
    assert app["shared_dirs"] == [{"name": "media", "shared": "/srv/mysite/shared/media",
                                   "link": f"/srv/mysite/releases/{release}/media"}]


def test_the_caddy_site_serves_static_files_from_the_release_with_cache_headers() -> None:
    site = site_content(["d.test"], "unix//srv/d/web.sock", True,
                        static=Static("/static/", "/srv/d/live/staticfiles", "/srv/d/previous/staticfiles"))
    assert "\thandle_path /static/* {\n\t\troot * /srv/d/live/staticfiles\n" in site
    assert "\t\troot @previous /srv/d/previous/staticfiles\n" in site  # the old release's names still resolve
    assert 'header @hashed Cache-Control "public, max-age=31536000, immutable"' in site
    assert 'header @plain Cache-Control "public, max-age=300"' in site and "\t\tfile_server\n" in site
    assert "@plain not path_regexp" in site  # disjoint: Caddy applies deferred header ops in reverse order
    assert "\thandle {\n\t\treverse_proxy unix//srv/d/web.sock {" in site
    assert "{8" not in site  # no brace in the regexp: it would be read as a Caddy placeholder
    plain = site_content(["d.test"], "unix//srv/d/web.sock", True)
    assert "handle" not in plain and "\treverse_proxy unix//srv/d/web.sock {" in plain


# ---- build steps (on the runner) ---------------------------------------------------------------
def test_build_steps_write_into_the_staged_source_and_a_failing_one_stops_the_build(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("x = 1\n")
    bin_dir = tmp_path.parent / (tmp_path.name + "-venv") / "bin"
    env = build_step_env(os.environ, bin_dir)
    assert env["PATH"].startswith(str(bin_dir)) and env["VIRTUAL_ENV"] == str(bin_dir.parent)
    seen: list[str] = []
    run_build_steps(["mkdir -p staticfiles && echo body > staticfiles/site.css", "test -f app.py"], tmp_path,
                    env, seen.append)
    assert seen == ["build step 1/2: mkdir -p staticfiles && echo body > staticfiles/site.css",
                    "build step 2/2: test -f app.py"]
    assert staged_files(tmp_path) == ["app.py", "staticfiles/site.css"]
    with pytest.raises(BuildError, match=r"(?s)build step 2 \(echo boom >&2; exit 3\) failed with exit code 3:\nboom"):
        run_build_steps(["true", "echo boom >&2; exit 3", "touch never"], tmp_path, env)
    assert not (tmp_path / "never").exists()
    with pytest.raises(BuildError, match="did not finish within 0.5 s"):
        run_build_steps(["sleep 5"], tmp_path, env, timeout=0.5)
