"""The artifact is deterministic and reused for unchanged source (built for real with pip)."""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

from shipit.artifact import build_artifact

APP = """\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "tiny-app"
version = "0.1.0"
"""


def make_app(root: Path) -> Path:
    (root / "src" / "tiny_app").mkdir(parents=True)
    (root / "pyproject.toml").write_text(APP)
    (root / "src" / "tiny_app" / "__init__.py").write_text("VALUE = 1\n")
    (root / "__pycache__").mkdir()
    (root / "__pycache__" / "junk.pyc").write_bytes(b"\0")
    return root


def test_same_source_same_bytes_and_a_change_makes_a_new_artifact(tmp_path: Path) -> None:
    app = make_app(tmp_path / "app")
    cache = tmp_path / "wheels-cache"
    first = build_artifact(app, tmp_path / "out1", cache_dir=cache)
    again = build_artifact(app, tmp_path / "out2", cache_dir=cache)  # a fresh build, no index
    assert first.sha256 == again.sha256 and first.distribution == "tiny-app"
    names = tarfile.open(first.path).getnames()
    assert "pyproject.toml" in names and "src/tiny_app/__init__.py" in names
    assert any(n.startswith(".shipit/wheels/tiny_app-0.1.0-") for n in names)
    assert not any("__pycache__" in n for n in names)

    reused = build_artifact(app, tmp_path / "out1", cache_dir=cache)
    assert reused == first

    (app / "src" / "tiny_app" / "__init__.py").write_text("VALUE = 2\n")
    changed = build_artifact(app, tmp_path / "out1", cache_dir=cache)
    assert changed.sha256 != first.sha256
    shutil.rmtree(app)
