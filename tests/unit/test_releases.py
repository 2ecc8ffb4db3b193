"""Release states as data: history, the rollback target and what prune deletes (pure)."""

from __future__ import annotations

import pytest

from shipit.releases import history, live_sequence, log_line, parse_log_line, prune_candidates, rollback_target

R1, R2, R3, R4 = (f"20261201T10000{i}Z-aaaaaaaaaaa{i}" for i in range(1, 5))


def entry(release: str, state: str, time: str = "2026-12-01T10:00:00Z") -> dict[str, str]:
    return {"time": time, "user": "ci@runner", "action": "deploy", "release": release, "state": state}


def test_log_line_round_trips_and_refuses_unknown_states() -> None:
    line = log_line("2026-12-01T10:00:00Z", "a\tb", "deploy", R1, "live")
    assert parse_log_line(line) == {"time": "2026-12-01T10:00:00Z", "user": "a b", "action": "deploy",
                                    "release": R1, "state": "live"}
    assert parse_log_line("garbage") is None
    assert parse_log_line("t\tu\tdeploy\tr\tok") is None  # an old 'result' column is not a state
    with pytest.raises(ValueError, match="unknown release state"):
        log_line("t", "u", "deploy", R1, "ok")


def test_rollback_never_goes_to_a_release_that_never_served() -> None:
    """Regression (#11 item 1): R2 failed at migrate, R3 is live: rollback goes to R1."""
    log = [entry(R1, "built"), entry(R1, "live"), entry(R2, "built"), entry(R2, "failed"),
           entry(R3, "built"), entry(R3, "migrated"), entry(R3, "live"), entry(R1, "retired")]
    assert rollback_target(R3, log, [R1, R2, R3]) == R1
    assert live_sequence(log) == [R1, R3]


def test_rollback_target_none_without_a_previous_live_release() -> None:
    assert rollback_target(R1, [entry(R1, "built"), entry(R1, "live")], [R1]) is None
    log = [entry(R1, "live"), entry(R2, "live")]
    assert rollback_target(R2, log, [R2]) is None  # R1 was pruned: nothing to go back to


def test_rollback_after_rollback_goes_to_the_one_live_before() -> None:
    log = [entry(R1, "live"), entry(R2, "live"), entry(R1, "live")]
    assert rollback_target(R1, log, [R1, R2]) == R2


def test_history_keeps_first_built_time_and_latest_state() -> None:
    log = [entry(R1, "built", "t1"), entry(R1, "live", "t2"), entry(R1, "retired", "t3"),
           entry(R1, "built", "t4")]
    info = history(log)[R1]
    assert (info.state, info.built_at, info.live_at, info.ever_live) == ("built", "t1", "t2", True)


def test_prune_keeps_current_and_target_and_deletes_failed_first() -> None:
    """Regression (#11 item 1): pruning deleted the last good release and kept failed ones."""
    log = [entry(R1, "live"), entry(R2, "failed"), entry(R3, "failed"), entry(R4, "live")]
    assert prune_candidates([R1, R2, R3, R4], R4, log, keep=2) == [R2, R3]
    assert prune_candidates([R1, R2, R3, R4], R4, log, keep=3) == [R2]
    assert prune_candidates([R1, R2, R3, R4], R4, log, keep=5) == []


def test_prune_never_deletes_protected_or_newer_live_releases() -> None:
    # rolled back from R3 to R2: R3 is newer than current and went live, R1 is the target
    log = [entry(R1, "live"), entry(R2, "live"), entry(R3, "live"), entry(R2, "live"), entry(R4, "failed")]
    doomed = prune_candidates([R1, R2, R3, R4], R2, log, keep=2)
    assert R2 not in doomed and R3 not in doomed
    assert doomed == [R4, R1] or doomed == [R4]
    assert R4 in prune_candidates([R1, R2, R3, R4], R2, log, keep=2, protected=[R1])
    assert R1 not in prune_candidates([R1, R2, R3, R4], R2, log, keep=2, protected=[R1])


def test_prune_orders_releases_by_the_log_not_by_id() -> None:
    """Releases built in the same second have ids that sort by content hash: the log says
    which is older (regression: prune kept 4 of keep=3 and could delete the wrong one)."""
    same = "20261203T094829Z-"
    a, b, c, d = same + "f0", same + "a0", same + "e0", same + "10"  # built in this order
    log = [entry(r, s) for r in (a, b, c, d) for s in ("built", "live")]
    log += [entry(r, "retired") for r in (a, b, c)]
    assert prune_candidates([a, b, c, d], d, log, keep=3) == [a]
    assert prune_candidates([a, b, c, d], d, log, keep=2) == [a, b]
    # rolled back from d to c: d went live after c, so it is the newer one, kept
    back = log + [entry(d, "retired"), entry(c, "live")]
    assert d not in prune_candidates([a, b, c, d], c, back, keep=2)
    # a release the log never mentions counts as the oldest
    assert prune_candidates([a, b, c, d, same + "00"], d, log, keep=4) == [same + "00"]
