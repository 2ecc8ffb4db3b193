"""Build a release artifact once, on the runner: the app's source plus wheels for the hosts.

What ships follows the app's lock, never the runner's caches: dependencies are resolved by
uv (``uv export --frozen`` of a ``uv.lock``, or ``uv pip compile`` of a pinned
``requirements.txt`` or, without a lock, of the pyproject's ranges) for the hosts'
:class:`~shipit.platform.TargetPlatform` (their machine, glibc and CPython X.Y, not the
runner's) into a PEP 751 ``pylock.toml``; each package's wheel is then chosen for the target
by tag (:func:`~shipit.platform.best_wheel`) and fetched by its URL, its sha256 checked
against the lock. A local content-addressed store (``<cache>/wheels/<sha256>.whl``) makes the
second fetch free; it is keyed by the hash the lock names, so it speeds builds up but never
decides what ships. Layouts of apps: see :mod:`shipit.lockfile`.

The artifact is a deterministic ``.tar.gz`` (entries sorted within each part, mtimes fixed at
1980-01-01, owner 0/root, modes 0644/0755): the same source, lock and target give the same
bytes and the same content hash, whichever cache built it. Layout inside::

    .shipit/bin/uv                  # uv for the target platform, to build the venv on the host
    .shipit/wheels/*.whl            # every dependency wheel, for the target platform
    <the app's source files>        # git-tracked + untracked-not-ignored files, as in the work tree
    .shipit/wheels/<app>-*.whl      # the app's own wheel (pyproject apps only)
    .shipit/requirements.txt        # pinned ``name==version`` lines the host installs (no app)
    .shipit/artifact.json           # target platform, lock source, locked/resolved, wheels

It is two gzip members, one after the other (``tar -xzf`` and Python read them as one
stream): the first holds ``.shipit/bin`` and the dependency wheels and is kept in the cache
(``<cache>/parts/``), so a code change re-compresses only the second, the app's part. Each
member is also written on its own as a content-addressed :class:`Part`
(``<out_dir>/parts/<sha256>.gz``): hosts keep a store of parts and are sent only the ones
they lack (the ``release_artifact`` module), so a code change uploads the app's part alone.

Incremental: the resolution (``uv export`` / ``uv pip compile`` and the choice of wheels) is
kept in ``<cache>/resolutions/``, keyed by the lock inputs (``pyproject.toml``, ``uv.lock``,
the requirements file), the target and uv's version; the deps part is kept by the lock's
digests of its wheels (no wheel read or hashed again); and the app's wheel, when only files
the backend copies verbatim into it changed, is the previous one patched
(:func:`app_wheel_incremental`), byte for byte what a full build gives. A one-line code
change then builds in about a second, with no resolution and no build backend.

Hosts need no package index: the release's venv is built offline from ``.shipit/wheels`` with
``.shipit/bin/uv`` (the ``python`` module's ``uv`` param).
"""

from __future__ import annotations

import base64
import functools
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
import urllib.request
import zipfile
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib.metadata import version as _dist_version
from pathlib import Path
from typing import Any

from shipit.errors import ShipitError
from shipit.lockfile import (
    AppLayout,
    LockedFile,
    LockedPackage,
    LockError,
    detect_layout,
    normalize,
    parse_pylock,
    parse_requirements,
)
from shipit.platform import TargetPlatform, best_wheel, check_wheel_tags

_SKIP_DIRS = {".git", ".venv", "venv", "__pycache__", "build", "dist", ".pytest_cache", ".mypy_cache",
              ".shipit", "node_modules"}
FIXED_MTIME = 315532800  # 1980-01-01, the earliest a wheel's zip can hold
FORMAT = 2  # of artifact.json and of the layout; part of the reuse key
DEFAULT_CACHE = "~/.cache/shipit"
"""Default cache root; ``SHIPIT_CACHE_DIR`` overrides it."""


@dataclass(frozen=True)
class Part:
    """One gzip member of an artifact, stored on its own by content (``<out_dir>/parts/``).

    Attributes:
        kind: ``"deps"`` (uv and the dependency wheels: tar entries without the end-of-archive
            blocks, so that it concatenates with the next member) or ``"app"`` (the app's
            source, wheel and metadata: a complete tar archive).
        path: the local file, ``<out_dir>/parts/<sha256>.gz``.
        sha256: hex digest of the file's bytes (its name on the hosts' store).
        size: bytes.
    """

    kind: str
    path: str
    sha256: str
    size: int

    def as_json(self) -> dict[str, Any]:
        """JSON form (in the artifact's reuse index; the ``parts`` template variable)."""
        return {"kind": self.kind, "path": self.path, "sha256": self.sha256, "size": self.size}


@dataclass(frozen=True)
class Artifact:
    """A built artifact.

    Attributes:
        path: the ``.tar.gz`` file, ``<out_dir>/<content_hash>.tar.gz``.
        sha256: hex digest of the file; ``content_hash`` its first 12 hex digits.
        distribution: the app's distribution name to install from ``.shipit/wheels`` (pyproject
            apps), or None (a source-tree app: the release dir itself goes on the path).
        size: bytes.
        target: the platform the wheels are for.
        requirements: pinned ``name==version`` of every dependency (sorted), as written to
            ``.shipit/requirements.txt``.
        wheels: file names in ``.shipit/wheels`` (sorted; the app's wheel included).
        lock: where the dependencies came from: ``uv.lock``, the requirements file's name, or
            ``pyproject.toml`` (resolved at build time).
        locked: True when every dependency version came from the lock; False when uv resolved
            (some of) them at build time.
        parts: the gzip members the file is the concatenation of, in order (deps, then app):
            see :class:`Part`.
    """

    path: str
    sha256: str
    content_hash: str
    distribution: str | None
    size: int
    target: TargetPlatform
    requirements: tuple[str, ...] = ()
    wheels: tuple[str, ...] = ()
    lock: str = ""
    locked: bool = False
    parts: tuple[Part, ...] = ()

    def as_json(self) -> dict[str, Any]:
        """JSON form (the reuse index in ``out_dir``)."""
        return {"path": self.path, "sha256": self.sha256, "content_hash": self.content_hash,
                "distribution": self.distribution, "size": self.size,
                "target": self.target.as_dict(), "requirements": list(self.requirements),
                "wheels": list(self.wheels), "lock": self.lock, "locked": self.locked,
                "parts": [p.as_json() for p in self.parts]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Artifact:
        """Inverse of :meth:`as_json`. Raises KeyError, TypeError, PlatformError."""
        parts = tuple(Part(str(p["kind"]), str(p["path"]), str(p["sha256"]), int(p["size"]))
                      for p in data["parts"])
        return cls(str(data["path"]), str(data["sha256"]), str(data["content_hash"]),
                   data["distribution"], int(data["size"]), TargetPlatform.from_dict(data["target"]),
                   tuple(data["requirements"]), tuple(data["wheels"]), str(data["lock"]),
                   bool(data["locked"]), parts)


class BuildError(ShipitError):
    """Building the artifact failed: uv could not resolve or build, a download failed or did
    not match its lock hash, a dependency has no wheel for the target, the source is unreadable."""


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """The cache root: ``cache_dir``, else ``$SHIPIT_CACHE_DIR``, else ``~/.cache/shipit``."""
    return Path(cache_dir or os.environ.get("SHIPIT_CACHE_DIR") or DEFAULT_CACHE).expanduser()


def uv_version() -> str:
    """The version of the ``uv`` distribution shipit depends on (and ships to hosts)."""
    return _dist_version("uv")


@functools.cache
def uv_bin() -> str:
    """Path of the runner's ``uv`` executable (from the ``uv`` wheel). Called once in the main
    thread before the build's threads start (``find_uv_bin`` reads sysconfig, not thread-safe)."""
    from uv import find_uv_bin
    return str(find_uv_bin())


def source_files(source: Path) -> list[str]:
    """Relative paths of the files to ship: inside git, tracked plus untracked-not-ignored
    files (the work tree as it is); elsewhere, every file except build/VCS/cache directories."""
    inside = subprocess.run(["git", "-C", str(source), "rev-parse", "--is-inside-work-tree"],
                            capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False)
    if inside.returncode == 0 and inside.stdout.strip() == "true":
        listing = subprocess.run(["git", "-C", str(source), "ls-files", "-z", "--cached", "--others",
                                  "--exclude-standard", "."], capture_output=True, text=True,
                                 stdin=subprocess.DEVNULL, check=False)
        if listing.returncode == 0:
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


def distribution_name(source: Path) -> str | None:
    """The app's ``[project].name``, or None for a source-tree (requirements-only) app.

    Raises:
        BuildError: neither a ``[project]`` nor a requirements.txt.
    """
    try:
        return detect_layout(source).distribution
    except LockError as exc:
        raise BuildError(exc.message) from None


# ---- running uv ---------------------------------------------------------------------------
def _uv_env(cache: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"UV_CACHE_DIR": str(cache / "uv"), "UV_NO_PROGRESS": "1",
                "UV_PYTHON_DOWNLOADS": "never", "SOURCE_DATE_EPOCH": str(FIXED_MTIME)})
    return env


def _uv(args: list[str], cwd: Path, env: Mapping[str, str], what: str) -> str:
    """Run ``uv ARGS`` in ``cwd``; its stdout. Raises BuildError with uv's last lines."""
    done = subprocess.run([uv_bin(), *args], cwd=cwd, env=dict(env), capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, check=False)
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-12:])
        raise BuildError(f"{what} failed (uv {' '.join(args[:2])}, exit {done.returncode}):\n{tail}")
    return done.stdout


def _compile(inputs: list[str], cwd: Path, target: TargetPlatform, work: Path,
             env: Mapping[str, str], name: str, stdin_text: str | None = None) -> list[LockedPackage]:
    """``uv pip compile`` ``inputs`` for ``target`` into ``work/pylock.<name>.toml``, parsed."""
    out = work / f"pylock.{name}.toml"
    if stdin_text is not None:
        spec = work / f"{name}.in"
        spec.write_text(stdin_text)
        inputs = [*inputs, str(spec)]
    args = ["pip", "compile", *inputs, "--python-version", target.python,
            "--python-platform", target.uv_platform(), "--no-header", "--quiet", "-o", str(out)]
    _uv(args, cwd, env, f"resolving {name} for {target.describe()}")
    try:
        return parse_pylock(out.read_text())
    except LockError as exc:
        raise BuildError(exc.message) from None


@dataclass(frozen=True)
class Resolution:
    """What to ship: ``packages`` (from the pylock), ``locked`` (versions all from the lock),
    ``hashes`` (name -> sha256 digests the lock allows; empty when it gives none) and ``added``
    (``name==version`` that uv chose rather than the lock: all of them without a lock)."""

    packages: tuple[LockedPackage, ...]
    locked: bool
    hashes: Mapping[str, frozenset[str]]
    added: tuple[str, ...]


def resolve(source: Path, layout: AppLayout, target: TargetPlatform, work: Path,
            env: Mapping[str, str]) -> Resolution:
    """Resolve the app's dependencies for ``target`` with uv (see the module docstring).

    Raises:
        BuildError: uv failed (``uv.lock`` out of date, no version fits), or the resolution
            contradicts a pin of the lock.
    """
    if layout.kind == "uv.lock":
        # a workspace member: its own dependencies from the workspace's lock, no member
        scope = (["--package", str(layout.distribution), "--no-emit-workspace"] if layout.workspace
                 else ["--no-emit-project"])
        exported = _uv(["export", "--frozen", "--format", "requirements-txt", *scope,
                        "--no-dev", "--no-header", "--no-annotate", "--no-editable"],
                       source, env, f"exporting {layout.lock}")
        reqs = parse_requirements(exported)
        packages = _compile([], source, target, work, env, "deps", stdin_text=exported)
    else:
        reqs = None
        inputs = []
        if layout.kind == "requirements":
            try:
                reqs = parse_requirements((source / layout.lock).read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError) as exc:
                raise BuildError(f"{source / layout.lock}: {exc}") from None
            except LockError as exc:
                raise BuildError(f"{source / layout.lock}: {exc.message}") from None
            inputs.append(str(source / layout.lock))
        if layout.distribution:
            inputs.append(str(source / "pyproject.toml"))
        packages = _compile(inputs, source, target, work, env, "deps")
    packages = [p for p in packages if p.name != normalize(layout.distribution or "")]
    if reqs is None or not reqs.locked:
        every = tuple(f"{p.name}=={p.version}" for p in packages)
        return Resolution(tuple(packages), False, reqs.hashes if reqs else {}, every)
    for p in packages:
        if p.name in reqs.pins and reqs.pins[p.name] != p.version:
            raise BuildError(f"{layout.lock} pins {p.name}=={reqs.pins[p.name]} but uv resolved "
                             f"{p.version}: the lock is inconsistent")
    added = tuple(f"{p.name}=={p.version}" for p in packages if p.name not in reqs.pins)
    return Resolution(tuple(packages), not added, reqs.hashes, added)


def _resolution_key(source: Path, layout: AppLayout, target: TargetPlatform, requirements: str) -> str:
    """What a resolution depends on: the lock inputs' bytes, the target and uv's version."""
    key = hashlib.sha256(f"{FORMAT}\n{target.key()}\n{uv_version()}\n{layout.kind}\n{layout.lock}\n"
                         f"{layout.distribution}\n".encode())
    for name in sorted({"pyproject.toml", "uv.lock", requirements, layout.lock}):
        path = source / name
        key.update(f"{name}\0".encode())
        key.update(hashlib.sha256(path.read_bytes()).digest() if path.is_file() else b"-")
    return key.hexdigest()


def _file_json(f: LockedFile) -> dict[str, str]:
    return {"filename": f.filename, "url": f.url, "sha256": f.sha256}


def _file_from(d: Mapping[str, str]) -> LockedFile:
    return LockedFile(str(d["filename"]), str(d["url"]), str(d["sha256"]))


def resolution_json(r: Resolution) -> dict[str, Any]:
    """JSON form of a :class:`Resolution` (the cache of :func:`resolve_cached`)."""
    return {"packages": [{"name": p.name, "version": p.version,
                          "wheels": [_file_json(w) for w in p.wheels],
                          "sdist": _file_json(p.sdist) if p.sdist else None} for p in r.packages],
            "locked": r.locked, "hashes": {k: sorted(v) for k, v in r.hashes.items()},
            "added": list(r.added)}


def resolution_from(data: Mapping[str, Any]) -> Resolution:
    """Inverse of :func:`resolution_json`. Raises KeyError, TypeError."""
    packages = tuple(LockedPackage(str(p["name"]), str(p["version"]),
                                   tuple(_file_from(w) for w in p["wheels"]),
                                   _file_from(p["sdist"]) if p["sdist"] else None)
                     for p in data["packages"])
    return Resolution(packages, bool(data["locked"]),
                      {str(k): frozenset(v) for k, v in data["hashes"].items()},
                      tuple(str(a) for a in data["added"]))


def resolve_cached(source: Path, layout: AppLayout, target: TargetPlatform, work: Path,
                   env: Mapping[str, str], cache: Path, requirements: str) -> Resolution:
    """:func:`resolve`, kept in ``cache/resolutions/<key>.json`` (see :func:`_resolution_key`):
    unchanged lock inputs for the same target resolve once. A resolution uv made without a
    lock (``locked`` False) is kept as well: it is what that pyproject resolved to, and a
    change of the pyproject is a new key. Raises what :func:`resolve` raises."""
    record = cache / "resolutions" / f"{_resolution_key(source, layout, target, requirements)}.json"
    try:
        return resolution_from(json.loads(record.read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        pass
    resolution = resolve(source, layout, target, work, env)
    record.parent.mkdir(parents=True, exist_ok=True)
    tmp = record.with_suffix(f".{os.getpid()}.part")
    tmp.write_text(json.dumps(resolution_json(resolution)))
    os.replace(tmp, record)
    return resolution


# ---- fetching by content hash ----------------------------------------------------------------
def fetch(file: LockedFile, store: Path) -> Path:
    """The file ``file`` names, from ``store/<sha256><suffix>`` or else downloaded from its URL
    (http(s), file:// or a local path) into the store after its sha256 is checked.

    Raises:
        BuildError: the download failed, or its sha256 is not the one the lock names.
    """
    suffix = ".whl" if file.filename.endswith(".whl") else ".sdist"
    dest = store / f"{file.sha256}{suffix}"
    if dest.is_file() and _sha256_file(dest) == file.sha256:
        return dest
    store.mkdir(parents=True, exist_ok=True)
    url = file.url if "://" in file.url else Path(file.url).resolve().as_uri()
    tmp = store / f".{file.sha256}.{os.getpid()}.part"
    try:
        with urllib.request.urlopen(url, timeout=120) as response, open(tmp, "wb") as out:
            shutil.copyfileobj(response, out, 1 << 20)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise BuildError(f"downloading {file.filename} failed: {exc}") from None
    got = _sha256_file(tmp)
    if got != file.sha256:
        tmp.unlink(missing_ok=True)
        raise BuildError(f"{file.filename}: sha256 {got} is not the {file.sha256} the lock names "
                         "(a changed or corrupted file on the index or proxy)")
    os.replace(tmp, dest)
    return dest


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def choose_files(packages: tuple[LockedPackage, ...] | list[LockedPackage], target: TargetPlatform,
                 hashes: Mapping[str, frozenset[str]]) -> tuple[list[LockedFile], list[LockedPackage]]:
    """Pure: the wheel to ship for each package (best tag for ``target``), and the packages
    with no wheel for it (to build from their sdist, or refuse).

    Raises:
        BuildError: the chosen file's sha256 is not among the lock's hashes for that package.
    """
    chosen, sdist_only = [], []
    for p in packages:
        best = best_wheel([w.filename for w in p.wheels], target)
        if best is None:
            sdist_only.append(p)
            continue
        file = next(w for w in p.wheels if w.filename == best)
        allowed = hashes.get(p.name)
        if allowed and file.sha256 not in allowed:
            raise BuildError(f"{p.name} {p.version}: {file.filename} (sha256 {file.sha256}) is "
                             "not one of the files the lock pins by hash")
        chosen.append(file)
    return chosen, sdist_only


def refuse_sdists(sdist_only: list[LockedPackage], target: TargetPlatform) -> str | None:
    """Pure: why the sdist-only packages cannot ship to ``target`` (None when they can be built
    here: the runner has the target's platform, see :meth:`TargetPlatform.is_runner`)."""
    if not sdist_only or target.is_runner():
        return None
    names = ", ".join(f"{p.name} {p.version}" for p in sdist_only)
    return (f"{names}: no wheel for {target.describe()} on the index, only a source "
            "distribution, and this runner cannot build one for that platform; build the "
            "artifact on a runner of the hosts' platform, or pick a version with wheels")


def _build_sdist(p: LockedPackage, store: Path, target: TargetPlatform, work: Path,
                 env: Mapping[str, str]) -> Path:
    """Build ``p``'s wheel from its sdist on this runner (same platform as the target); the
    result is kept as ``store/built/<sdist sha256>-<target>.whl``."""
    if p.sdist is None:
        raise BuildError(f"{p.name} {p.version}: neither a wheel for {target.describe()} nor a "
                         "source distribution")
    built = store / "built" / f"{p.sdist.sha256}-{target.key()}"
    found = sorted(built.glob("*.whl")) if built.is_dir() else []
    if found:
        return found[0]
    sdist = fetch(p.sdist, store)
    unpack = work / f"sdist-{p.name}"
    unpack.mkdir(parents=True)
    local = unpack / p.sdist.filename
    shutil.copyfile(sdist, local)
    out = unpack / "out"
    _uv(["build", "--wheel", "--out-dir", str(out), "--python", f"python{target.python}", str(local)],
        unpack, env, f"building {p.name} {p.version} from its sdist")
    wheels = sorted(out.glob("*.whl"))
    if not wheels:
        raise BuildError(f"building {p.name} {p.version} from its sdist made no wheel")
    built.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(wheels[0], built / wheels[0].name)
    return built / wheels[0].name


def _uv_for_target(target: TargetPlatform, store: Path, work: Path, env: Mapping[str, str],
                   cwd: Path) -> Path:
    """The ``uv`` executable for ``target`` (shipit's own pinned uv version), extracted from
    its wheel into ``store/uv-bin/<wheel sha256>/uv``."""
    want = uv_version()
    # uv==X for one platform is one immutable file on the index: remember which, by key, so a
    # rebuild needs no resolution for it (a bad record only costs a refetch: hashes checked)
    record = store / "uv-bin" / f"uv-{want}-{target.uv_platform()}-{target.abi}.json"
    try:
        known = json.loads(record.read_text())
        chosen = [LockedFile(str(known["filename"]), str(known["url"]), str(known["sha256"]))]
    except (OSError, ValueError, KeyError, TypeError):
        pkgs = _compile([], cwd, target, work, env, "uv", stdin_text=f"uv=={want}\n")
        chosen, missing = choose_files([p for p in pkgs if p.name == "uv"], target, {})
        if missing or not chosen:
            raise BuildError(f"uv {want} has no wheel for {target.describe()}") from None
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_text(json.dumps({"filename": chosen[0].filename, "url": chosen[0].url,
                                      "sha256": chosen[0].sha256}))
    binary = store / "uv-bin" / chosen[0].sha256 / "uv"
    if not binary.is_file():
        wheel = fetch(chosen[0], store)
        binary.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheel) as zf:
            member = next((n for n in zf.namelist() if n.endswith(".data/scripts/uv")), None)
            if member is None:
                raise BuildError(f"{chosen[0].filename}: no .data/scripts/uv inside")
            tmp = binary.with_suffix(".part")
            with zf.open(member) as src, open(tmp, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
            tmp.chmod(0o755)
            os.replace(tmp, binary)
    return binary


def _app_wheel(staging: Path, out: Path, env: Mapping[str, str]) -> Path:
    """``uv build --wheel`` the staged app (SOURCE_DATE_EPOCH fixed: same source, same bytes)."""
    _uv(["build", "--wheel", "--out-dir", str(out), str(staging)], staging, env,
        "building the app's wheel")
    wheels = sorted(out.glob("*.whl"))
    if len(wheels) != 1:
        raise BuildError(f"building the app's wheel made {len(wheels)} wheels, expected 1")
    return wheels[0]


# ---- the app's wheel, incrementally ---------------------------------------------------------
_PURE_TAGS = ("-py3-none-any.whl", "-py2.py3-none-any.whl")


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def canonical_wheel(members: list[tuple[str, bytes, int]], dest: Path) -> None:
    """Write a wheel of ``members`` (name, bytes, unix mode; any RECORD among them is
    replaced) to ``dest`` in one canonical form: names sorted with the ``.dist-info`` files
    last and RECORD regenerated last, fixed 1980 timestamps, deflate. Whatever built the
    members (the backend, or :func:`patched_wheel`), equal members give equal bytes."""
    body = [m for m in members if not m[0].endswith(".dist-info/RECORD")]
    dist_info = next((m[0].split("/")[0] for m in members if m[0].split("/")[0].endswith(".dist-info")), None)
    if dist_info is None:
        raise BuildError(f"{dest.name}: no .dist-info directory in the app's wheel")
    body.sort(key=lambda m: (m[0].startswith(dist_info + "/"), m[0]))
    record = "".join(f"{n},{_record_hash(d)},{len(d)}\n" for n, d, _ in body) + f"{dist_info}/RECORD,,\n"
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.part")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data, mode in [*body, (f"{dist_info}/RECORD", record.encode(), 0o644)]:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = ((mode or 0o644) & 0xFFFF) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    os.replace(tmp, dest)


def _members(wheel: Path) -> list[tuple[str, bytes, int]]:
    with zipfile.ZipFile(wheel) as zf:
        return [(i.filename, zf.read(i), (i.external_attr >> 16) & 0o777) for i in zf.infolist()
                if not i.is_dir()]


def verbatim_map(members: list[tuple[str, bytes, int]], sources: Mapping[str, bytes]) -> dict[str, str]:
    """Pure: wheel member -> the one source file (relative path) it is a byte-for-byte copy
    of, the member's path being a suffix of the source's (``example_app/main.py`` <-
    ``src/example_app/main.py``). Members with no such file, or more than one, are left out."""
    out: dict[str, str] = {}
    for name, data, _ in members:
        if ".dist-info/" in name or ".data/" in name:
            continue
        found = [rel for rel, content in sources.items()
                 if (rel == name or rel.endswith("/" + name)) and content == data]
        if len(found) == 1:
            out[name] = found[0]
    return out


def patched_wheel(members: list[tuple[str, bytes, int]], mapping: Mapping[str, str],
                  sources: Mapping[str, bytes]) -> list[tuple[str, bytes, int]]:
    """Pure: ``members`` with each mapped member's bytes replaced by its source's now."""
    return [(n, sources[mapping[n]] if n in mapping else d, mode) for n, d, mode in members]


def _incremental_ok(src: Path) -> bool:
    """Patching a previous wheel is sound only when the backend copies sources verbatim:
    no ``setup.py`` (arbitrary code), and a version that is static in ``pyproject.toml``."""
    if (src / "setup.py").exists():
        return False
    try:
        project = tomllib.loads((src / "pyproject.toml").read_text(encoding="utf-8")).get("project", {})
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return False
    return "version" not in (project.get("dynamic") or [])


def app_wheel_incremental(src: Path, files: list[str], staging: Path, out: Path,
                          env: Mapping[str, str], cache: Path) -> tuple[Path, bool]:
    """The app's wheel for the staged source: ``(path, patched)``.

    A full build (:func:`_app_wheel`) is written in :func:`canonical_wheel` form and kept in
    ``cache/app-wheels/<key>`` with which member copies which source file and the digest of
    every other source file (the key: the source's file names and modes, wherever it is). When
    only files copied verbatim into that wheel changed since, and the app passes
    :func:`_incremental_ok` with a pure-Python wheel, the kept wheel is patched instead of
    built (milliseconds, no build backend): the same bytes a full build then gives, since
    both are canonical. Any other change (a new or removed file, ``pyproject.toml``, a
    README that goes into the metadata) builds in full. Raises what :func:`_app_wheel` raises.
    """
    names = hashlib.sha256(f"{FORMAT}\n".encode())     # not the dir: a fresh checkout reuses it
    for rel in files:
        names.update(f"{rel}\0{os.access(src / rel, os.X_OK)}\n".encode())
    base = cache / "app-wheels" / names.hexdigest()[:32]
    sources = {rel: (src / rel).read_bytes() for rel in files}
    out.mkdir(parents=True, exist_ok=True)
    try:
        record = json.loads((base / "record.json").read_text())
        kept = base / str(record["wheel"])
        mapping = {str(k): str(v) for k, v in record["mapped"].items()}
        unchanged = all(hashlib.sha256(sources[rel]).hexdigest() == digest
                        for rel, digest in record["inputs"].items())
        if unchanged and kept.is_file() and set(record["inputs"]) | set(mapping.values()) == set(files):
            dest = out / kept.name
            canonical_wheel(patched_wheel(_members(kept), mapping, sources), dest)
            return dest, True
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile):
        pass
    built = _app_wheel(staging, out / "backend", env)
    members = _members(built)
    dest = out / built.name
    canonical_wheel(members, dest)
    if built.name.endswith(_PURE_TAGS) and _incremental_ok(src):
        mapping = verbatim_map(members, sources)
        inputs = {rel: hashlib.sha256(sources[rel]).hexdigest() for rel in files
                  if rel not in set(mapping.values())}
        base.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(dest, base / dest.name)
        (base / "record.json").write_text(json.dumps({"wheel": dest.name, "mapped": mapping,
                                                      "inputs": inputs}))
    return dest, False
# ---- build steps ---------------------------------------------------------------------------
BUILD_STEP_TIMEOUT = 1800.0
"""Seconds one ``build:`` command may run on the runner before it is stopped."""


def _build_venv(staging: Path, work: Path, pins: list[str], target: TargetPlatform,
                distribution: str | None, env: Mapping[str, str]) -> Path:
    """A venv on the runner (outside ``staging``) with the app's pinned dependencies installed
    from the index (for the RUNNER's platform: the build steps run here), and a pyproject app
    itself (``--no-deps``); its ``bin`` directory."""
    venv = work / "build-venv"
    try:
        _uv(["venv", "--quiet", "--python", target.python, str(venv)], work, env, "creating the build venv")
    except BuildError:  # the runner lacks the hosts' X.Y: the build steps run on its own Python
        _uv(["venv", "--quiet", "--python", sys.executable, str(venv)], work, env, "creating the build venv")
    python = str(venv / "bin" / "python")
    if pins:
        reqs = work / "build-requirements.txt"
        reqs.write_text("".join(f"{p}\n" for p in pins))
        _uv(["pip", "install", "--quiet", "--python", python, "-r", str(reqs)], work, env,
            "installing the dependencies for the build steps")
    if distribution:
        _uv(["pip", "install", "--quiet", "--python", python, "--no-deps", str(staging)], work, env,
            "installing the app for the build steps")
        for leftover in ("build",):  # setuptools builds in the tree: not part of the source
            shutil.rmtree(staging / leftover, ignore_errors=True)
    return venv / "bin"


def build_step_env(base: Mapping[str, str], venv_bin: Path) -> dict[str, str]:
    """Pure: the environment of a build step: ``base`` with the build venv activated (first on
    ``PATH``, ``VIRTUAL_ENV``), ``PYTHONDONTWRITEBYTECODE`` (no ``__pycache__`` in the artifact)."""
    env = {k: v for k, v in base.items() if k not in ("PYTHONHOME", "PYTHONPATH")}
    env["PATH"] = f"{venv_bin}{os.pathsep}{base.get('PATH', '/usr/bin:/bin')}"
    env["VIRTUAL_ENV"] = str(venv_bin.parent)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def run_build_steps(commands: tuple[str, ...] | list[str], staging: Path, env: Mapping[str, str],
                    progress: Callable[[str], None] | None = None,
                    timeout: float = BUILD_STEP_TIMEOUT) -> None:
    """Run each ``build:`` command with ``sh -c`` in ``staging`` (the copy of the source that
    becomes the artifact), in order, each within ``timeout`` seconds; ``progress`` is told
    before each one.

    Raises:
        BuildError: a command exited non-zero or ran out of time (its name, the exit code and
            the last lines of its output).
    """
    for i, command in enumerate(commands, 1):
        if progress:
            progress(f"build step {i}/{len(commands)}: {command}")
        try:
            done = subprocess.run(["/bin/sh", "-c", command], cwd=staging, env=dict(env),
                                  capture_output=True, text=True, stdin=subprocess.DEVNULL,
                                  timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise BuildError(f"build step {i} ({command}) did not finish within {timeout:g} s") from None
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-12:])
            raise BuildError(f"build step {i} ({command}) failed with exit code {done.returncode}:\n{tail}")


def staged_files(staging: Path) -> list[str]:
    """Relative paths of every file in ``staging`` after the build steps (the source's files
    plus what the steps wrote), without VCS/cache directories or bytecode."""
    files = []
    for root, dirs, names in os.walk(staging):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS and not d.endswith(".egg-info"))
        for name in names:
            path = Path(root) / name
            if not name.endswith(".pyc") and path.is_file() and not path.is_symlink():
                files.append(str(path.relative_to(staging)))
    return sorted(files)


# ---- the artifact ------------------------------------------------------------------------
def build_artifact(source: str | Path, out_dir: str | Path, python_version: str | None = None,
                   cache_dir: str | Path | None = None, target: TargetPlatform | None = None,
                   requirements: str = "requirements.txt", build: tuple[str, ...] | list[str] = (),
                   progress: Callable[[str], None] | None = None) -> Artifact:
    """Build the release artifact of the app in ``source`` into ``out_dir``.

    Args:
        source: the app's directory (see :mod:`shipit.lockfile` for the layouts read).
        out_dir: where ``<content_hash>.tar.gz`` and the reuse index are written.
        python_version: the hosts' CPython X.Y when ``target`` is not given (default: the
            runner's platform with this Python).
        cache_dir: cache root (default :func:`cache_root`): ``wheels/`` (content-addressed
            downloads), ``parts/`` (compressed dependency parts), ``uv/`` (uv's own cache).
        target: the hosts' platform (:func:`shipit.platform.target_for_hosts`).
        requirements: the requirements file's name, relative to ``source``.
        build: the app spec's ``build:`` commands, run in the staged copy of the source with
            the dependencies installed in a venv on the runner (:func:`run_build_steps`);
            whatever they write there ships (e.g. ``collectstatic``'s ``staticfiles/``).
        progress: told about each build step.

    Returns the :class:`Artifact`. An unchanged source (same files, modes, bytes) for the same
    target returns the artifact built before without resolving again.

    Raises:
        BuildError: see :func:`resolve`, :func:`fetch`, :func:`choose_files`; a dependency with
            only an sdist for a target this runner cannot build for; an app wheel that does not
            run on the target; a build step that failed.
    """
    src = Path(source).resolve()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cache = cache_root(cache_dir)
    tgt = target or TargetPlatform.runner(python_version)
    try:
        layout = detect_layout(src, requirements)
    except LockError as exc:
        raise BuildError(exc.message) from None
    files = source_files(src)
    unshipped = [n for n in ("pyproject.toml", layout.lock) if not n.startswith("..")
                 and (src / n).is_file() and n not in files]
    if not files or unshipped:
        what = "none of its files would ship" if not files else f"{', '.join(sorted(set(unshipped)))} would not ship"
        raise BuildError(f"{src}: {what}: the source is in a git work tree whose ignore rules "
                         "match it (shipit ships what git tracks or does not ignore); un-ignore it, or "
                         "deploy from a directory outside the repository")
    # the same source files (names, modes, bytes) for the same target give the same artifact:
    # reuse it instead of resolving again (a no-op deploy is then mostly SSH round trips)
    source_key = hashlib.sha256(f"{FORMAT}\n{tgt.key()}\n{uv_version()}\n{requirements}\n"
                                f"{json.dumps(list(build))}\n".encode())
    for rel in files:
        source_key.update(f"{rel}\0{os.access(src / rel, os.X_OK)}\0".encode())
        source_key.update(hashlib.sha256((src / rel).read_bytes()).digest())
    if layout.workspace:  # the lock is the workspace's, outside the source
        source_key.update(hashlib.sha256((src / layout.lock).read_bytes()).digest())
    index = out / f"source-{source_key.hexdigest()[:24]}.json"
    try:
        known = Artifact.from_json(json.loads(index.read_text()))
        if Path(known.path).is_file() and all(Path(p.path).is_file() for p in known.parts) \
                and known.parts:
            return known
    except (OSError, ValueError, KeyError, TypeError, ShipitError):
        pass
    env = _uv_env(cache)
    uv_bin()
    store = cache / "wheels"
    with tempfile.TemporaryDirectory(prefix="shipit-build-") as tmp:
        work = Path(tmp)
        staging = work / "src"
        for rel in files:
            dest = staging / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / rel, dest)
        with ThreadPoolExecutor(max_workers=4) as pool:
            # independent: resolve the dependencies, fetch uv for the target, build the app
            resolution_f = pool.submit(resolve_cached, src, layout, tgt, work, env, cache, requirements)
            uv_f = pool.submit(_uv_for_target, tgt, store, work, env, src)
            app_f = pool.submit(app_wheel_incremental, src, files, staging, work / "app-wheel", env,
                                cache) if layout.distribution and not build else None
            resolution = resolution_f.result()
            if build:  # the steps may write into the package: its wheel is built after them
                venv_bin = _build_venv(staging, work, [f"{p.name}=={p.version}" for p in resolution.packages],
                                       tgt, layout.distribution, env)
                run_build_steps(build, staging, build_step_env(os.environ, venv_bin), progress)
                files = staged_files(staging)
                src = staging
                if layout.distribution:
                    app_f = pool.submit(app_wheel_incremental, staging, files, staging,
                                        work / "app-wheel", env, cache)
            chosen, sdist_only = choose_files(resolution.packages, tgt, resolution.hashes)
            refusal = refuse_sdists(sdist_only, tgt)
            if refusal:
                raise BuildError(refusal)
            built_paths = {}
            for p in sdist_only:
                built = _build_sdist(p, store, tgt, work, env)
                built_paths[built.name] = built
            uv_binary = uv_f.result()
            # every wheel's digest is the lock's (fetch checks it): the deps part's key needs
            # no file read, and a kept part needs no wheel fetched or hashed again
            digests = {f.filename: f.sha256 for f in chosen}
            digests.update({n: _sha256_file(p) for n, p in built_paths.items()})
            deps_cached = cache / "parts" / f"{_deps_key(uv_binary, digests)}.gz"
            if deps_cached.is_file():
                deps_data = deps_cached.read_bytes()
            else:
                dep_paths = {f.filename: p for f, p in
                             zip(chosen, pool.map(lambda f: fetch(f, store), chosen), strict=True)}
                dep_paths.update(built_paths)
                deps_entries = [(".shipit/bin/uv", uv_binary)] + \
                    [(f".shipit/wheels/{n}", p) for n, p in sorted(dep_paths.items())]
                deps_data = _deps_part(deps_entries, deps_cached)
            app_wheel = app_f.result()[0] if app_f else None
        wheel_names = sorted(digests) + ([app_wheel.name] if app_wheel else [])
        problems = check_wheel_tags(wheel_names, tgt)
        if problems:
            raise BuildError("wheels that would not run on the hosts:\n" + "\n".join(problems))
        pins = sorted(f"{p.name}=={p.version}" for p in resolution.packages)
        meta = {
            "format": FORMAT, "target": tgt.as_dict(), "lock": layout.lock,
            "locked": resolution.locked,
            # what uv chose at build time rather than the lock: everything without a lock
            "resolved_at_build": sorted(resolution.added),
            "layout": layout.kind, "distribution": layout.distribution,
            "app_wheel": app_wheel.name if app_wheel else None, "requirements": pins,
            "uv": uv_version(),
            "wheels": dict(sorted(digests.items())),
        }
        app_entries: list[tuple[str, Path | bytes]] = [(rel, src / rel) for rel in files]
        if app_wheel:
            app_entries.append((f".shipit/wheels/{app_wheel.name}", app_wheel))
        app_entries.append((".shipit/requirements.txt", "".join(f"{p}\n" for p in pins).encode()))
        app_entries.append((".shipit/artifact.json",
                            (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode()))
        members = [("deps", deps_data),
                   ("app", _deterministic_tar(app_entries))]
    data = b"".join(m for _, m in members)
    digest = hashlib.sha256(data).hexdigest()
    path = out / f"{digest[:12]}.tar.gz"
    if not path.exists():
        _write_atomic(path, data)
    parts = []
    for kind, member in members:
        sha = hashlib.sha256(member).hexdigest()
        part_path = out / "parts" / f"{sha}.gz"
        if not part_path.is_file():
            part_path.parent.mkdir(parents=True, exist_ok=True)
            _write_atomic(part_path, member)
        parts.append(Part(kind, str(part_path), sha, len(member)))
    artifact = Artifact(str(path), digest, digest[:12], layout.distribution, len(data), tgt,
                        tuple(pins), tuple(wheel_names), layout.lock, resolution.locked, tuple(parts))
    index.write_text(json.dumps(artifact.as_json()))
    return artifact


def _write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary name beside ``path``, then rename it over ``path``."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _tar_entries(entries: list[tuple[str, Path | bytes]], end: bool) -> bytes:
    """Tar bytes of ``entries`` sorted by name (fixed mtime, owner 0/root, mode 0644 or 0755
    for executables); with ``end``, closed by the end-of-archive blocks."""
    raw = io.BytesIO()
    tar = tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT)
    for name, item in sorted(entries, key=lambda e: e[0]):
        info = tarfile.TarInfo(name)
        content = item if isinstance(item, bytes) else item.read_bytes()
        info.size = len(content)
        info.mtime = FIXED_MTIME
        info.mode = 0o755 if not isinstance(item, bytes) and os.access(item, os.X_OK) else 0o644
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        tar.addfile(info, io.BytesIO(content))
    if end:
        tar.close()
    return raw.getvalue()


def _gzip(data: bytes) -> bytes:
    packed = io.BytesIO()
    with gzip.GzipFile(fileobj=packed, mode="wb", mtime=0, compresslevel=6) as gz:
        gz.write(data)
    return packed.getvalue()


def _deterministic_tar(entries: list[tuple[str, Path | bytes]]) -> bytes:
    """A gzip member of a complete tar archive of ``entries`` (see :func:`_tar_entries`)."""
    return _gzip(_tar_entries(entries, end=True))


def _deps_key(uv_binary: Path, digests: Mapping[str, str]) -> str:
    """The key of a deps part: the uv wheel's digest (``uv-bin/<sha256>/uv``) and each
    dependency wheel's name and digest; the same dependencies give the same key."""
    key = hashlib.sha256(f"{FORMAT}\nuv {uv_binary.parent.name}\n".encode())
    for name, digest in sorted(digests.items()):
        key.update(f"{name}\0{digest}\n".encode())
    return key.hexdigest()


def _deps_part(entries: list[tuple[str, Path]], cached: Path) -> bytes:
    """The gzip member of the dependency entries (tar entries, no end-of-archive), kept as
    ``cached`` (``<cache>/parts/<key>.gz``, see :func:`_deps_key`) to skip compressing again."""
    data = _gzip(_tar_entries(list(entries), end=False))
    cached.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(cached, data)
    return data
