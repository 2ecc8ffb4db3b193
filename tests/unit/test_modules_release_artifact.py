"""release_artifact and the parts store (#12 item 2): which parts a host lacks -> which
uploads; unpacking; prune keeps what kept releases need; the fact's parsing. Pure."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from shipit.facts import FactQuery
from shipit.facts.app import parse, release_state
from shipit.layout import Layout
from shipit.modules.base import PlanContext
from shipit.modules.deploy_state import ReleasePruneModule
from shipit.modules.release_artifact import (
    ReleaseArtifactModule,
    missing_parts,
    parts_to_prune,
    store_script,
    unpack_script,
)

M = ReleaseArtifactModule()
CTX = PlanContext(host="web1", host_facts={})
DEPS, APP, APP2 = "d" * 64, "a" * 64, "b" * 64
PARTS = [{"kind": "deps", "path": "/out/parts/d.gz", "sha256": DEPS, "size": 30_000_000},
         {"kind": "app", "path": "/out/parts/a.gz", "sha256": APP, "size": 17_000}]
R1, R2, R3 = "20261201T100000Z-000000000001", "20261201T110000Z-000000000002", "20261201T120000Z-000000000003"


def state(**kw: Any) -> dict[FactQuery, Any]:
    base = parse("")
    base.update(kw)
    return {release_state("example"): base}


def plan(st: dict[FactQuery, Any], parts: list[dict[str, Any]] = PARTS, release: str = R2) -> Any:
    return M.plan({"app": "example", "release": release, "parts": parts}, st, CTX)


def test_a_fresh_host_gets_every_part_then_the_unpack() -> None:
    p = plan(state())
    assert [c.reason for c in p.changes] == [
        f"upload deps part {DEPS[:12]} (28.6 MiB)", f"upload app part {APP[:12]} (16.6 KiB)",
        f"unpack {R2} (0 of 2 parts already on the host)"]
    assert [c.upload.sha256 for c in p.changes if c.upload] == [DEPS, APP]
    assert Layout("example").part(DEPS) in p.changes[0].script


def test_a_code_change_uploads_only_the_app_part() -> None:
    p = plan(state(parts={DEPS: 30_000_000, APP2: 17_100}))
    assert [c.upload.local for c in p.changes if c.upload] == ["/out/parts/a.gz"]
    assert p.changes[-1].reason == f"unpack {R2} (1 of 2 parts already on the host)"


def test_a_part_stored_with_another_size_is_sent_again() -> None:
    assert missing_parts(PARTS, {DEPS: 29_999_999, APP: 17_000}) == [PARTS[0]]
    assert missing_parts(PARTS + PARTS, {}) == PARTS          # once each


def test_an_unpacked_release_changes_nothing() -> None:
    assert not plan(state(unpacked=[R2], parts={DEPS: 30_000_000, APP: 17_000})).changed


def test_a_release_in_use_without_its_marker_is_never_cleared() -> None:
    assert "not touching it" in (plan(state(current=R2)).failed or "")
    assert "not touching it" in (plan(state(slots={8001: R2})).failed or "")


def test_bad_parts_are_refused_before_any_connection() -> None:
    assert M.check_params({"app": "example", "release": R1, "parts": []})
    assert M.check_params({"app": "example", "release": R1, "parts": [{**PARTS[0], "sha256": "x"}]})
    assert M.check_params({"app": "example", "release": R1, "parts": [{**PARTS[0], "kind": "other"}]})
    assert not M.check_params({"app": "example", "release": R1, "parts": PARTS})


def test_prune_keeps_every_part_a_kept_release_needs() -> None:
    uses = {R1: [DEPS, APP], R2: [DEPS, APP2]}
    assert parts_to_prune({DEPS: 1, APP: 1, APP2: 1}, uses, [R2]) == [APP]
    assert parts_to_prune({DEPS: 1, APP: 1, APP2: 1}, uses, [R1, R2]) == []
    assert parts_to_prune([DEPS, APP], {}, [R1]) == [APP, DEPS]        # nothing known uses them
    assert parts_to_prune([DEPS, APP], {}, [], wanted=[APP]) == [DEPS]


def test_release_prune_removes_the_parts_of_pruned_releases_only() -> None:
    log = [{"time": f"t{i}", "user": "u", "action": "deploy", "release": r, "state": "live"}
           for i, r in enumerate((R1, R2, R3))]
    st = state(releases=[R1, R2, R3], current=R3, log=log, parts={DEPS: 1, APP: 1, APP2: 1, "c" * 64: 1},
               uses={R1: [DEPS, APP], R2: [DEPS, APP2], R3: [DEPS, "c" * 64]})
    p = ReleasePruneModule().plan({"app": "example", "keep": 2}, st, CTX)
    lay = Layout("example")
    assert p.changes[0].reason == f"prune {R1}, 1 unused part"
    assert lay.part(APP) in p.changes[0].script and lay.part(APP2) not in p.changes[0].script
    assert lay.part(DEPS) not in p.changes[0].script


def test_the_fact_lists_only_digest_names_and_what_each_release_uses() -> None:
    out = (f"release={R1}\nunpacked={R1}\nuses={R1} {DEPS} {APP} \npart={DEPS} 30000000\n"
           f"part=.shipit-AbCd1234 100\npart={APP} 17000\n")
    st = parse(out)
    assert st["parts"] == {DEPS: 30_000_000, APP: 17_000}
    assert st["uses"] == {R1: [DEPS, APP]} and st["unpacked"] == [R1]


def test_the_scripts_store_verified_and_unpack_into_a_release(tmp_path: Path) -> None:
    """The scripts run here against a Layout under tmp_path: a part whose bytes do not match
    its digest is removed and fails the unpack; a good one is unpacked and recorded."""
    import gzip
    import hashlib
    import io
    import tarfile
    lay = Layout("example", base=str(tmp_path))
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo("app.py")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"v=1"))
    data = gzip.compress(raw.getvalue())
    sha = hashlib.sha256(data).hexdigest()
    Path(lay.parts).mkdir(parents=True)
    part = {"kind": "app", "path": "x", "sha256": sha, "size": len(data)}
    Path(lay.part(sha)).write_bytes(data[:20] + bytes([data[20] ^ 0xFF]) + data[21:])   # damaged in place
    bad = subprocess.run(["sh", "-ec", unpack_script(lay, R1, [part])], capture_output=True, text=True)
    assert bad.returncode != 0 and "does not match its sha256" in bad.stderr
    assert not Path(lay.part(sha)).exists() and not Path(lay.meta(R1), "unpacked").exists()
    Path(lay.part(sha)).write_bytes(data)
    ok = subprocess.run(["sh", "-ec", unpack_script(lay, R1, [part])], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert Path(lay.release(R1), "app.py").read_text() == "v=1"
    assert Path(lay.release_parts(R1)).read_text() == sha + "\n"
    assert "sha256sum -c" in store_script(lay, ".shipit-upload-x", sha)
