"""Build a release artifact once, on the runner: the app's source plus wheels for the hosts.

The artifact is a deterministic ``.tar.gz`` (sorted entries, fixed mtimes and owners), so the
same source and dependencies give the same bytes and the same content hash: that is how a
re-deploy of an unchanged app is recognised and creates no release. Layout inside::

    <the app's source files>        # git-tracked + untracked-not-ignored files, as in the work tree
    .shipit/wheels/*.whl            # the app and every dependency, built for the hosts' Python

Hosts need no package index: the release's venv is built from ``.shipit/wheels``.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shlex
import shutil
import sys
import tarfile
import tempfile
import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path

from invoke.context import Context

from shipit.errors import ShipitError

_SKIP_DIRS = {".git", ".venv", "venv", "__pycache__", "build", "dist", ".pytest_cache", ".mypy_cache",
              ".shipit", "node_modules"}
FIXED_MTIME = 315532800  # 1980-01-01, the earliest a wheel's zip can hold


@dataclass(frozen=True)
class Artifact:
    """A built artifact: its path, sha256 (hex), a 12-hex content hash, and the app's
    distribution name (what to install into the venv from the wheels)."""

    path: str
    sha256: str
    content_hash: str
    distribution: str
    size: int


class BuildError(ShipitError):
    """Building the artifact failed (pip could not build a wheel, the source is unreadable)."""


def source_files(source: Path) -> list[str]:
    """Relative paths of the files to ship: inside git, tracked plus untracked-not-ignored
    files (the work tree as it is); elsewhere, every file except build/VCS/cache directories."""
    ctx = Context()
    inside = ctx.run(f"git -C {shlex.quote(str(source))} rev-parse --is-inside-work-tree", hide=True, warn=True, in_stream=False)
    if inside is not None and inside.ok and inside.stdout.strip() == "true":
        listing = ctx.run(f"git -C {shlex.quote(str(source))} ls-files -z --cached --others --exclude-standard .",
                          hide=True, warn=True, in_stream=False)
        if listing is not None and listing.ok:
            names = [n for n in listing.stdout.split("\0") if n]
            return sorted(n for n in names if (source / n).is_file()
                          and not set(Path(n).parts) & _SKIP_DIRS)
    files = []
    for root, dirs, names in os.walk(source):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS and not d.endswith(".egg-info"))
        for name in names:
            if not name.endswith((".pyc", ".db")):
                files.append(str((Path(root) / name).relative_to(source)))
    return sorted(files)


def distribution_name(source: Path) -> str:
    """The app's distribution name from ``pyproject.toml`` ``[project].name``.

    Raises:
        BuildError: no pyproject.toml with a project name.
    """
    try:
        data = tomllib.loads((source / "pyproject.toml").read_text(encoding="utf-8"))
        return str(data["project"]["name"])
    except (OSError, KeyError, tomllib.TOMLDecodeError) as exc:
        raise BuildError(f"{source}/pyproject.toml: need a [project] name to build the app's "
                         f"wheel ({type(exc).__name__}: {exc})") from None


def build_wheels(staging: Path, wheels: Path, cache: Path, python_version: str | None) -> None:
    """``pip wheel`` the staged app and its dependencies into ``wheels``.

    Dependencies come from ``cache`` when present there (no index query), else from the index,
    and are kept in ``cache`` for the next build. The runner's Python must match the hosts'
    X.Y (wheels are built for the runner's interpreter).

    Raises:
        BuildError: pip failed, or the runner's Python differs from ``python_version``.
    """
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    if python_version and python_version != here:
        raise BuildError(f"the hosts run Python {python_version} but shipit runs on Python {here}: "
                         "wheels are built for the runner's interpreter; run shipit with "
                         f"python{python_version}")
    cache.mkdir(parents=True, exist_ok=True)
    env = {"SOURCE_DATE_EPOCH": str(FIXED_MTIME), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    pip = f"{shlex.quote(sys.executable)} -m pip wheel --quiet --wheel-dir {shlex.quote(str(wheels))}"
    ctx = Context()
    offline = ctx.run(f"{pip} --no-index --find-links {shlex.quote(str(cache))} {shlex.quote(str(staging))}", hide=True, warn=True, env=env, in_stream=False)
    if offline is None or not offline.ok:
        shutil.rmtree(wheels, ignore_errors=True)
        online = ctx.run(f"{pip} --find-links {shlex.quote(str(cache))} {shlex.quote(str(staging))}", hide=True, warn=True, env=env, in_stream=False)
        if online is None or not online.ok:
            detail = (online.stderr if online is not None else "").strip().splitlines()[-8:]
            raise BuildError("building wheels failed:\n" + "\n".join(detail))
    for wheel in wheels.glob("*.whl"):
        if not (cache / wheel.name).exists():
            shutil.copyfile(wheel, cache / wheel.name)


def build_artifact(source: str | Path, out_dir: str | Path, python_version: str | None = None,
                   cache_dir: str | Path = "~/.cache/shipit/wheels") -> Artifact:
    """Build the release artifact of the app in ``source`` into ``out_dir``.

    Returns the :class:`Artifact`; the file is ``out_dir/<content_hash>.tar.gz``.

    Raises:
        BuildError: see :func:`build_wheels` and :func:`distribution_name`.
    """
    src = Path(source).resolve()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dist = distribution_name(src)
    files = source_files(src)
    # the same source files (names, modes, bytes) and Python give the same artifact: reuse it
    # instead of running pip again (a no-op deploy is then mostly SSH round trips)
    source_key = hashlib.sha256()
    source_key.update(f"{python_version}\n".encode())
    for rel in files:
        source_key.update(f"{rel}\0{os.access(src / rel, os.X_OK)}\0".encode())
        source_key.update(hashlib.sha256((src / rel).read_bytes()).digest())
    index = out / f"source-{source_key.hexdigest()[:24]}.json"
    try:
        known = json.loads(index.read_text())
        if Path(known["path"]).is_file():
            return Artifact(**known)
    except (OSError, ValueError, KeyError, TypeError):
        pass
    with tempfile.TemporaryDirectory(prefix="shipit-build-") as tmp:
        staging = Path(tmp) / "src"
        for rel in files:
            target = staging / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / rel, target)
        wheels = Path(tmp) / "wheels"
        build_wheels(staging, wheels, Path(cache_dir).expanduser(), python_version)
        entries = [(rel, src / rel) for rel in files]
        entries += [(f".shipit/wheels/{w.name}", w) for w in sorted(wheels.glob("*.whl"))]
        data = _deterministic_tar(entries)
    digest = hashlib.sha256(data).hexdigest()
    path = out / f"{digest[:12]}.tar.gz"
    if not path.exists():
        path.write_bytes(data)
    artifact = Artifact(str(path), digest, digest[:12], dist, len(data))
    index.write_text(json.dumps(asdict(artifact)))
    return artifact


def _deterministic_tar(entries: list[tuple[str, Path]]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, path in sorted(entries):
            info = tarfile.TarInfo(name)
            content = path.read_bytes()
            info.size = len(content)
            info.mtime = FIXED_MTIME
            info.mode = 0o755 if os.access(path, os.X_OK) else 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            tar.addfile(info, io.BytesIO(content))
    packed = io.BytesIO()
    with gzip.GzipFile(fileobj=packed, mode="wb", mtime=0, compresslevel=6) as gz:
        gz.write(raw.getvalue())
    return packed.getvalue()
