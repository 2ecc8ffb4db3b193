"""Lock and requirements parsing, layout detection, wheel choice from a pylock (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipit.artifact import BuildError, choose_files, refuse_sdists
from shipit.lockfile import AppLayout, LockError, detect_layout, parse_pylock, parse_requirements
from shipit.platform import TargetPlatform

H1, H2 = "a" * 64, "b" * 64


def test_pinned_requirements_are_a_lock() -> None:
    text = ("# pip freeze\nDjango==5.1.4 \\\n    --hash=sha256:" + H1 + "\n"
            "asgiref==3.8.1 ; python_version >= '3.8'\n\n--index-url x\nsqlparse===0.5.3\n")
    reqs = parse_requirements(text)
    assert reqs.pins == {"django": "5.1.4", "asgiref": "3.8.1", "sqlparse": "0.5.3"}
    assert reqs.hashes == {"django": frozenset({H1})} and reqs.locked


def test_ranges_are_not_a_lock_and_includes_are_refused() -> None:
    reqs = parse_requirements("django>=5,<6\ngunicorn\nsix==1.16.0\n")
    assert not reqs.locked and reqs.unpinned == ("django>=5,<6", "gunicorn")
    assert not parse_requirements("").locked
    with pytest.raises(LockError, match="includes are not followed"):
        parse_requirements("-r base.txt\n")
    with pytest.raises(LockError, match="editable"):
        parse_requirements("-e .\n")


def test_layouts(tmp_path: Path) -> None:
    project = '[project]\nname = "my-app"\nversion = "1"\n'
    (tmp_path / "requirements.txt").write_text("django==5.1.4\n")
    assert detect_layout(tmp_path).kind == "requirements"
    assert detect_layout(tmp_path).distribution is None
    (tmp_path / "pyproject.toml").write_text("[tool.black]\n")   # no [project]: still the tree
    assert detect_layout(tmp_path).distribution is None
    (tmp_path / "pyproject.toml").write_text(project)
    assert (detect_layout(tmp_path).kind, detect_layout(tmp_path).distribution) == ("requirements", "my-app")
    (tmp_path / "uv.lock").write_text("version = 1\n")
    assert detect_layout(tmp_path).lock == "uv.lock"
    (tmp_path / "uv.lock").unlink()
    (tmp_path / "requirements.txt").unlink()
    assert detect_layout(tmp_path).kind == "pyproject"
    (tmp_path / "pyproject.toml").unlink()
    with pytest.raises(LockError, match="no dependencies to ship"):
        detect_layout(tmp_path)


def test_a_uv_workspace_member_uses_the_workspace_lock(tmp_path: Path) -> None:
    """As uv finds it: the nearest [tool.uv.workspace] above whose members hold the app."""
    (tmp_path / "pyproject.toml").write_text('[tool.uv.workspace]\nmembers = ["apps/*", "backend"]\n'
                                             'exclude = ["apps/old"]\n')
    (tmp_path / "uv.lock").write_text("version = 1\n")
    for member in ("backend", "apps/api", "apps/old", "tools/x"):
        (tmp_path / member).mkdir(parents=True)
        (tmp_path / member / "pyproject.toml").write_text(f'[project]\nname = "{member.replace("/", "-")}"\n')
    assert detect_layout(tmp_path / "backend") == AppLayout("uv.lock", "backend", "../uv.lock", workspace=True)
    assert detect_layout(tmp_path / "apps" / "api").lock == "../../uv.lock"
    assert detect_layout(tmp_path / "apps" / "old").kind == "pyproject"     # excluded
    assert detect_layout(tmp_path / "tools" / "x").kind == "pyproject"      # not a member
    # a lock of its own wins; no lock at the root: nothing is locked
    (tmp_path / "backend" / "uv.lock").write_text("version = 1\n")
    assert detect_layout(tmp_path / "backend") == AppLayout("uv.lock", "backend", "uv.lock")
    (tmp_path / "uv.lock").unlink()
    assert detect_layout(tmp_path / "apps" / "api").kind == "pyproject"


PYLOCK = f'''
lock-version = "1.0"
[[packages]]
name = "SQLAlchemy"
version = "2.1.9"
sdist = {{ url = "https://files.example/sqlalchemy-2.1.9.tar.gz", hashes = {{ sha256 = "{H1}" }} }}
wheels = [
  {{ url = "https://files.example/sqlalchemy-2.1.9-cp311-cp311-manylinux_2_17_aarch64.whl", hashes = {{ sha256 = "{H1}" }} }},
  {{ url = "https://files.example/sqlalchemy-2.1.9-py3-none-any.whl", hashes = {{ sha256 = "{H2}" }} }},
]
[[packages]]
name = "psycopg2"
version = "2.9.10"
sdist = {{ url = "https://files.example/psycopg2-2.9.10.tar.gz", hashes = {{ sha256 = "{H2}" }} }}
'''


def test_choose_wheels_for_the_target_and_check_lock_hashes() -> None:
    pkgs = parse_pylock(PYLOCK)
    assert [p.name for p in pkgs] == ["psycopg2", "sqlalchemy"]
    arm = TargetPlatform("3.11", "aarch64", "2.36")
    chosen, sdist_only = choose_files(pkgs, arm, {})
    assert [f.filename for f in chosen] == ["sqlalchemy-2.1.9-cp311-cp311-manylinux_2_17_aarch64.whl"]
    assert [p.name for p in sdist_only] == ["psycopg2"]
    x86 = TargetPlatform("3.11", "x86_64", "2.36")
    assert choose_files(pkgs, x86, {})[0][0].filename == "sqlalchemy-2.1.9-py3-none-any.whl"
    with pytest.raises(BuildError, match="not one of the files the lock pins"):
        choose_files(pkgs, x86, {"sqlalchemy": frozenset({H1})})


def test_sdist_only_for_a_foreign_platform_is_refused_naming_the_package() -> None:
    pkgs = parse_pylock(PYLOCK)
    why = refuse_sdists([p for p in pkgs if p.name == "psycopg2"],
                        TargetPlatform("3.11", "aarch64", "2.36"))
    assert why is not None and why.startswith("psycopg2 2.9.10: no wheel for CPython 3.11 on aarch64")
    assert refuse_sdists([], TargetPlatform("3.11", "aarch64", "2.36")) is None


def test_pylock_without_hashes_is_refused() -> None:
    with pytest.raises(LockError, match="sha256"):
        parse_pylock('[[packages]]\nname = "x"\nversion = "1"\n'
                     'wheels = [{ url = "https://e/x-1-py3-none-any.whl" }]\n')


def test_an_app_git_ignores_is_a_clear_build_error(tmp_path: Path) -> None:
    """An app copied into an ignored directory of a repository would ship nothing: said, with
    the way out, instead of a FileNotFoundError from deep in the build."""
    import subprocess

    from shipit.artifact import BuildError, build_artifact
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / ".gitignore").write_text("ignored/\n")
    app = tmp_path / "ignored" / "app"
    app.mkdir(parents=True)
    (app / "requirements.txt").write_text("flask==3.1.3\n")
    (app / "app.py").write_text("from flask import Flask\napp = Flask(__name__)\n")
    with pytest.raises(BuildError, match="none of its files would ship: the source is in a git work tree"):
        build_artifact(app, tmp_path / "out", cache_dir=tmp_path / "cache")
    (tmp_path / ".gitignore").write_text("ignored/app/requirements.txt\n")
    with pytest.raises(BuildError, match="requirements.txt would not ship: the source is in a git work tree"):
        build_artifact(app, tmp_path / "out", cache_dir=tmp_path / "cache")
