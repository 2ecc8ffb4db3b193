"""Incremental builds (#12 item 1): the resolution is kept by its lock inputs, so a code
change never resolves again; its JSON round-trips."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shipit import artifact
from shipit.artifact import Part, Resolution, resolution_from, resolution_json, resolve_cached
from shipit.lockfile import AppLayout, LockedFile, LockedPackage
from shipit.platform import TargetPlatform

TARGET = TargetPlatform.runner("3.11")
LAYOUT = AppLayout("requirements", None, "requirements.txt")
RES = Resolution((LockedPackage("six", "1.16.0", (LockedFile("six-1.16.0-py2.py3-none-any.whl",
                                                              "https://files.example/six.whl", "ab" * 32),),
                                None),), True, {"six": frozenset({"ab" * 32})}, ())


def test_a_resolution_round_trips() -> None:
    assert resolution_from(resolution_json(RES)) == RES


def test_a_code_change_reuses_the_resolution_a_lock_change_does_not(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def fake_resolve(source: Path, layout: AppLayout, target: TargetPlatform, work: Path, env: Any) -> Resolution:
        calls.append((source / "requirements.txt").read_text())
        return RES

    monkeypatch.setattr(artifact, "resolve", fake_resolve)
    src, cache = tmp_path / "src", tmp_path / "cache"
    src.mkdir()
    (src / "requirements.txt").write_text("six==1.16.0\n")
    (src / "app.py").write_text("v = 1\n")

    def build() -> Resolution:
        return resolve_cached(src, LAYOUT, TARGET, tmp_path, {}, cache, "requirements.txt")

    assert build() == RES and build() == RES
    (src / "app.py").write_text("v = 2\n")                      # a code change
    assert build() == RES and len(calls) == 1
    (src / "requirements.txt").write_text("six==1.17.0\n")      # a lock change
    build()
    assert len(calls) == 2
    other = TargetPlatform.runner("3.12")
    resolve_cached(src, LAYOUT, other, tmp_path, {}, cache, "requirements.txt")
    assert len(calls) == 3                                      # another target


def test_a_part_as_json() -> None:
    assert Part("app", "/o/parts/x.gz", "ab" * 32, 10).as_json() == {
        "kind": "app", "path": "/o/parts/x.gz", "sha256": "ab" * 32, "size": 10}


def _wheel(tmp: Path, main: bytes, name: str = "w.whl") -> Path:
    import zipfile
    path = tmp / name
    with zipfile.ZipFile(path, "w") as zf:             # a backend's order, its own timestamps
        zf.writestr("app-0.1.dist-info/METADATA", "Name: app\n")
        zf.writestr("app/main.py", main)
        zf.writestr("app/__init__.py", "")
        zf.writestr("app-0.1.dist-info/RECORD", "stale\n")
    return path


def test_a_patched_wheel_is_byte_for_byte_the_canonical_full_build(tmp_path: Path) -> None:
    from shipit.artifact import _members, canonical_wheel, patched_wheel, verbatim_map
    sources = {"src/app/main.py": b"v = 1\n", "src/app/__init__.py": b"", "README.md": b"# app\n",
               "tests/app/main.py": b"other\n"}
    built = _members(_wheel(tmp_path, b"v = 1\n"))
    mapping = verbatim_map(built, sources)
    assert mapping == {"app/main.py": "src/app/main.py", "app/__init__.py": "src/app/__init__.py"}
    changed = {**sources, "src/app/main.py": b"v = 2\n"}
    canonical_wheel(patched_wheel(built, mapping, changed), tmp_path / "patched.whl")
    canonical_wheel(_members(_wheel(tmp_path, b"v = 2\n", "full.whl")), tmp_path / "full.whl")
    assert (tmp_path / "patched.whl").read_bytes() == (tmp_path / "full.whl").read_bytes()
    names = [n for n, _, _ in _members(tmp_path / "full.whl")]
    assert names[-1] == "app-0.1.dist-info/RECORD" and names[0].startswith("app/")
    record = dict(m[:2] for m in _members(tmp_path / "full.whl"))["app-0.1.dist-info/RECORD"].decode()
    assert "app/main.py,sha256=" in record and "stale" not in record


def test_incremental_builds_only_for_static_versions_without_setup_py(tmp_path: Path) -> None:
    from shipit.artifact import _incremental_ok
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "a"\nversion = "1"\n')
    assert _incremental_ok(tmp_path)
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "a"\ndynamic = ["version"]\n')
    assert not _incremental_ok(tmp_path)
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "a"\nversion = "1"\n')
    (tmp_path / "setup.py").write_text("")
    assert not _incremental_ok(tmp_path)
