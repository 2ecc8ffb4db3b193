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
