"""Artifacts built for real with uv from the package index (network; no lab needed).

Slow layer (marked e2e, run by CI): resolution, downloads, wheel builds. Timings are printed,
never asserted.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from shipit.artifact import build_artifact, uv_bin
from shipit.platform import TargetPlatform, check_wheel_tags

pytestmark = pytest.mark.e2e

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "app"
X86 = TargetPlatform("3.11", "x86_64", "2.36")
ARM = TargetPlatform("3.11", "aarch64", "2.36")
RUNNER = TargetPlatform.runner()


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache for the module's builds (each test that needs a cold one makes its own)."""
    return tmp_path_factory.mktemp("shipit-cache")


def copy_example(dest: Path) -> Path:
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    return dest


def members(path: str) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(path) as tar:
        return {m.name: m for m in tar.getmembers()}


def read(path: str, name: str) -> bytes:
    with tarfile.open(path) as tar:
        f = tar.extractfile(name)
        assert f is not None
        return f.read()


def test_same_lock_same_bytes_from_an_empty_and_a_full_cache(tmp_path: Path, cache: Path) -> None:
    app = copy_example(tmp_path / "app")
    (app / "requirements.txt").write_text(    # a lock: pins for the app's dependencies
        subprocess.run([uv_bin(), "pip", "compile", "--quiet", "--no-header",
                        "--no-annotate", "--python-version", "3.11", "--python-platform",
                        X86.uv_platform(), str(app / "pyproject.toml")],
                       capture_output=True, text=True, check=True).stdout)
    started = time.monotonic()
    full = build_artifact(app, tmp_path / "out1", cache_dir=cache, target=X86)
    first = time.monotonic() - started
    cold = build_artifact(app, tmp_path / "out2", cache_dir=tmp_path / "empty-cache", target=X86)
    print(f"\nbuild with the shared cache {first:.1f}s")
    assert full.sha256 == cold.sha256 and full.locked and full.lock == "requirements.txt"
    assert hashlib.sha256(Path(full.path).read_bytes()).hexdigest() == cold.sha256
    meta = json.loads(read(full.path, ".shipit/artifact.json"))
    assert meta["locked"] is True and meta["resolved_at_build"] == []
    assert meta["target"] == {"python": "3.11", "machine": "x86_64", "glibc": "2.36"}
    names = members(full.path)
    assert all(m.mtime == 315532800 and m.uid == 0 for m in names.values())
    assert names[".shipit/bin/uv"].mode == 0o755


def test_for_aarch64_from_this_runner_only_aarch64_or_pure_wheels(tmp_path: Path, cache: Path) -> None:
    app = copy_example(tmp_path / "app")
    art = build_artifact(app, tmp_path / "out", cache_dir=cache, target=ARM)
    assert art.distribution == "shipit-example-app" and not art.locked   # ranges: resolved
    wheels = [n for n in members(art.path) if n.startswith(".shipit/wheels/")]
    assert any(n.startswith(".shipit/wheels/pydantic_core-") for n in wheels)
    for name in wheels:
        tags = name.rsplit("-", 3)[1:]
        assert tags[2].removesuffix(".whl") == "any" or "aarch64" in tags[2], name
    assert check_wheel_tags(art.wheels, ARM) == []
    problems = check_wheel_tags(art.wheels, X86)
    assert any(p.startswith("pydantic-core ") and "x86_64" in p for p in problems)
    elf = read(art.path, ".shipit/bin/uv")[:20]
    assert elf[:4] == b"\x7fELF" and int.from_bytes(elf[18:20], "little") == 183  # EM_AARCH64
    reqs = read(art.path, ".shipit/requirements.txt").decode().split()
    assert "pydantic-core==" + next(w.split("-")[1] for w in art.wheels
                                    if w.startswith("pydantic_core-")) in reqs


def test_code_change_rebuilds_only_the_app_part(tmp_path: Path, cache: Path) -> None:
    app = copy_example(tmp_path / "app")
    started = time.monotonic()
    one = build_artifact(app, tmp_path / "out", cache_dir=cache, target=X86)
    t1 = time.monotonic() - started
    assert build_artifact(app, tmp_path / "out", cache_dir=cache, target=X86) == one  # reused
    init = app / "src" / "example_app" / "__init__.py"
    init.write_text(init.read_text() + "\nCHANGED = 1\n")
    started = time.monotonic()
    two = build_artifact(app, tmp_path / "out", cache_dir=cache, target=X86)
    t2 = time.monotonic() - started
    print(f"\nexample app: build {t1:.2f}s, rebuild after a one-line change {t2:.2f}s")
    assert two.sha256 != one.sha256 and two.requirements == one.requirements
    a, b = members(one.path), members(two.path)
    deps = [n for n in a if n.startswith(".shipit/wheels/") and "shipit_example_app" not in n]
    assert deps and all(read(one.path, n) == read(two.path, n) for n in deps + [".shipit/bin/uv"])
    assert read(one.path, "src/example_app/__init__.py") != read(two.path, "src/example_app/__init__.py")
    assert set(a) == set(b)


@pytest.mark.skipif(RUNNER.machine != "x86_64" or not Path("/usr/bin/python3.11").exists(),
                    reason="builds the venv with the shipped uv for this runner's platform")
def test_requirements_app_ships_its_tree_and_installs_offline_with_the_shipped_uv(
        tmp_path: Path, cache: Path) -> None:
    app = tmp_path / "site"
    app.mkdir()
    (app / "manage.py").write_text("import sqlparse\nprint(sqlparse.format('select 1', keyword_case='upper'))\n")
    (app / "requirements.txt").write_text("sqlparse==0.5.3\n")
    (app / "__pycache__").mkdir()
    (app / "__pycache__" / "junk.pyc").write_bytes(b"\0")
    art = build_artifact(app, tmp_path / "out", cache_dir=cache, target=RUNNER)
    assert art.distribution is None and art.locked and art.requirements == ("sqlparse==0.5.3",)
    names = members(art.path)
    assert "manage.py" in names and not any("__pycache__" in n for n in names)
    release = tmp_path / "release"
    release.mkdir()
    subprocess.run(["tar", "-xzf", art.path, "-C", str(release)], check=True)
    uv, venv = release / ".shipit/bin/uv", release / "venv"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}   # no index settings, no network use
    subprocess.run([str(uv), "venv", "--no-config", "--quiet", "--no-python-downloads",
                    "--python", "/usr/bin/python3.11", "--", str(venv)], check=True, env=env)
    subprocess.run([str(uv), "pip", "install", "--no-config", "--offline", "--no-index", "--no-cache",
                    "--quiet", "--compile-bytecode", "--find-links", str(release / ".shipit/wheels"),
                    "--python", str(venv / "bin/python"), "-r",
                    str(release / ".shipit/requirements.txt")], check=True, env=env)
    out = subprocess.run([str(venv / "bin/python"), "manage.py"], cwd=release, check=True,
                         capture_output=True, text=True, env=env)
    assert out.stdout.strip() == "SELECT 1"


def test_uv_lock_app_ships_exactly_the_lock(tmp_path: Path, cache: Path) -> None:
    app = copy_example(tmp_path / "app")
    subprocess.run([uv_bin(), "lock", "--quiet"], cwd=app, check=True)
    locked = {line.split('"')[1]: None for line in (app / "uv.lock").read_text().splitlines()
              if line.startswith("name = ")}
    art = build_artifact(app, tmp_path / "out", cache_dir=cache, target=X86)
    assert art.lock == "uv.lock" and art.locked and art.distribution == "shipit-example-app"
    assert {r.split("==")[0] for r in art.requirements} <= set(locked)
    assert "pydantic-core" in {r.split("==")[0] for r in art.requirements}


def test_a_uv_workspace_member_ships_the_workspaces_lock(tmp_path: Path, cache: Path) -> None:
    """A monorepo's backend (``source: backend``) with the workspace's uv.lock at the root:
    its dependencies are the lock's versions for it, not a fresh resolution (an old idna the
    root pins proves it), and a change to the lock alone, the source unchanged, gives a new
    artifact with the lock's new version."""
    root = tmp_path / "mono"
    root.mkdir()
    workspace = '[tool.uv.workspace]\nmembers = ["backend"]\n[tool.uv]\nconstraint-dependencies = ["idna==IDNA"]\n'
    (root / "pyproject.toml").write_text(workspace.replace("IDNA", "3.6"))
    app = copy_example(root / "backend")
    subprocess.run([uv_bin(), "lock", "--quiet"], cwd=root, check=True)
    assert not (app / "uv.lock").exists() and (root / "uv.lock").is_file()
    art = build_artifact(app, tmp_path / "out", cache_dir=cache, target=X86)
    assert (art.lock, art.locked, art.distribution) == ("../uv.lock", True, "shipit-example-app")
    assert "idna==3.6" in art.requirements
    (root / "pyproject.toml").write_text(workspace.replace("IDNA", "3.7"))
    subprocess.run([uv_bin(), "lock", "--quiet"], cwd=root, check=True)
    again = build_artifact(app, tmp_path / "out", cache_dir=cache, target=X86)
    assert "idna==3.7" in again.requirements and again.sha256 != art.sha256
