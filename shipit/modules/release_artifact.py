"""The ``release_artifact`` module: send a host only the artifact parts it lacks, then unpack.

An artifact is a few content-addressed gzip members (:class:`shipit.artifact.Part`): the
dependencies (uv and every dependency wheel, megabytes, the same from one code change to the
next) and the app (its source, its wheel and metadata, kilobytes). Each host keeps a store of
parts, ``parts/<sha256>.gz`` (see :class:`shipit.layout.Layout`); the ``release_state`` fact
lists it (digest and size) in the same round trip as the rest of the app's state, and this
module plans one SFTP upload per part the host lacks (or holds with another size), nothing
for the others: with dependencies unchanged a code change uploads the app's part alone. (As
Docker's layer store or Kamal's image pull: by digest, only the missing layers.)

Each upload goes to a temporary name in the SSH user's home (see
:mod:`shipit.modules.upload`), is copied to a temporary name inside the store, checked
against its sha256 there and only then renamed to ``<sha256>.gz``: an interrupted or
corrupted transfer never appears under a digest's name, and the fact ignores every other
name (the temporaries are removed by ``release_prune``).

Unpacking a release that is not unpacked yet (no ``.shipit/unpacked`` marker; a half-made
release dir is cleared first): a deps part is unpacked once into ``parts/<sha256>.d`` (to a
temporary dir, renamed when complete) after its digest is checked again, and its files are
hard-linked into the release (no copy, no decompression per release); the app part is
checked and unpacked into the release; then ``.shipit/parts`` (the digests used, read by
``release_prune`` to keep what kept releases need) and the marker are written. A stored part
that does not match its digest is removed and the task fails (the next deploy uploads it
again). Params are validated before any connection.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from shipit.facts import FactQuery
from shipit.facts.app import release_state
from shipit.layout import Layout
from shipit.modules.base import Change, Module, Param, Plan, PlanContext, Upload, q
from shipit.modules.upload import upload_script

_SHA = re.compile(r"[0-9a-f]{64}")
KINDS = ("deps", "app")


def missing_parts(parts: Sequence[Mapping[str, Any]], store: Mapping[str, int]) -> list[Mapping[str, Any]]:
    """Pure: the parts (``{"kind", "path", "sha256", "size"}``) that ``store`` (digest ->
    bytes, the ``release_state`` fact's ``parts``) lacks or holds with another size; once
    each, in the order given."""
    seen: set[str] = set()
    missing = []
    for p in parts:
        if p["sha256"] in seen:
            continue
        seen.add(p["sha256"])
        if store.get(p["sha256"]) != int(p["size"]):
            missing.append(p)
    return missing


def parts_to_prune(store: Sequence[str] | Mapping[str, int], uses: Mapping[str, Sequence[str]],
                   kept: Sequence[str], wanted: Sequence[str] = ()) -> list[str]:
    """Pure: the stored parts (digests, sorted) that no release in ``kept`` was unpacked from
    (``uses``: release -> digests, the fact's ``uses``) and that are not ``wanted`` (a deploy
    in flight). A kept release whose digests are unknown (unpacked before parts existed)
    needs none."""
    needed = {sha for r in kept for sha in uses.get(r, ())} | set(wanted)
    return sorted(sha for sha in store if sha not in needed)


def store_script(lay: Layout, remote: str, sha256: str) -> str:
    """sh installing the uploaded ``remote`` as ``lay.part(sha256)``, verified (see the module
    docstring)."""
    return f"mkdir -p {q(lay.parts)}\nchmod 0755 {q(lay.parts)}\n" + \
        upload_script(remote, sha256, lay.part(sha256), "0644", "root", "root")


def unpack_script(lay: Layout, release: str, parts: Sequence[Mapping[str, Any]]) -> str:
    """sh unpacking ``release`` from its stored ``parts`` (in order; see the module docstring)."""
    rel = q(lay.release(release))
    lines = [
        "check() {",
        '  echo "$2  $1" | sha256sum -c --quiet - >/dev/null 2>&1 || {',
        '    rm -f -- "$1"',
        '    echo "shipit: stored part $1 does not match its sha256 (removed: the next deploy '
        'uploads it again)" >&2; exit 1; }',
        "}",
        f"rm -rf -- {rel}",
        f"mkdir -p -- {rel}",
        f"chmod 0755 {rel}",
    ]
    for p in parts:
        sha = p["sha256"]
        part = q(lay.part(sha))
        if p["kind"] == "deps":
            d = q(lay.part_dir(sha))
            lines += [
                f"if [ ! -d {d} ]; then",
                f"  check {part} {sha}",
                f'  tmp=$(mktemp -d {q(lay.parts)}/.shipit-XXXXXXXX)',
                f'  tar -xzf {part} -C "$tmp" --no-same-owner || {{ rm -rf -- "$tmp"; exit 1; }}',
                '  chmod 0755 "$tmp"',
                f'  mv -T "$tmp" {d}',
                "fi",
                f"cp -al -- {d}/. {rel}/",
            ]
        else:
            lines += [f"check {part} {sha}", f"tar -xzf {part} -C {rel} --no-same-owner"]
    digests = " ".join(p["sha256"] for p in parts)
    lines += [f"mkdir -p {q(lay.meta(release))}",
              f"printf '%s\\n' {digests} > {q(lay.release_parts(release))}",
              f"touch {q(lay.meta(release) + '/unpacked')}"]
    return "\n".join(lines)


class ReleaseArtifactModule(Module):
    """Upload the artifact parts a host lacks into its store, and unpack the release from them."""

    name = "release_artifact"
    doc = "Artifact parts a host lacks uploaded to its store (by sha256), the release unpacked from them."
    params = {
        "app": Param(str, required=True, help="app name"),
        "release": Param(str, required=True, help="release id"),
        "parts": Param(list, required=True,
                       help='the artifact\'s parts, in order: [{kind: deps|app, path, sha256, size}]'),
    }

    def check_params(self, params: Mapping[str, Any]) -> list[tuple[str, str]]:
        parts = params.get("parts")
        if not isinstance(parts, list) or not parts:
            return [("parts", "expected a non-empty list of {kind, path, sha256, size}")]
        for p in parts:
            if not isinstance(p, Mapping) or p.get("kind") not in KINDS \
                    or not isinstance(p.get("path"), str) or not isinstance(p.get("size"), int) \
                    or not _SHA.fullmatch(str(p.get("sha256", ""))):
                return [("parts", f"{p!r}: expected {{kind: deps|app, path: str, sha256: 64 hex "
                                  "digits, size: bytes}")]
        return []

    def facts(self, params: Mapping[str, Any]) -> list[FactQuery]:
        return [release_state(params["app"])]

    def plan(self, params: Mapping[str, Any], facts: Mapping[FactQuery, Any], ctx: PlanContext) -> Plan:
        """Fails when the release is not unpacked but serves or sits in a slot (never cleared)."""
        state = facts[release_state(params["app"])]
        lay = Layout(params["app"])
        release, parts = params["release"], list(params["parts"])
        if release in state["unpacked"]:
            return Plan()
        if release == state["current"] or release in state["slots"].values():
            return Plan(failed=f"release {release} is in use but not marked unpacked; not touching it")
        changes = []
        for p in missing_parts(parts, state["parts"]):
            sha = p["sha256"]
            remote = f".shipit-upload-{sha[:32]}"   # in the SSH user's home: see shipit.modules.upload
            changes.append(Change(f"upload {p['kind']} part {sha[:12]} ({_size(int(p['size']))})",
                                  store_script(lay, remote, sha),
                                  upload=Upload(ctx.local_path(p["path"]), remote, sha)))
        kept = len(parts) - len(missing_parts(parts, state["parts"]))
        changes.append(Change(f"unpack {release} ({kept} of {len(parts)} parts already on the host)",
                              unpack_script(lay, release, parts)))
        return Plan(tuple(changes))


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 1024:.1f} KiB"
