"""Release states, read from a host's release log: what served, what to roll back to, what to prune.

Every release on every host moves through recorded states, one line per event in
``releases.log`` (see :class:`shipit.layout.Layout`)::

    built  ->  migrated  ->  live  ->  retired
         \\____________\\______\\____->  failed

``built``: unpacked with its venv; ``migrated``: the leader ran ``migrate`` with it; ``live``:
it passed the health checks and serves (the host's ``current``); ``retired``: another release
went live after it; ``failed``: it did not get through (upload, migrate, start, health).

A log line is ``time<TAB>user<TAB>action<TAB>release<TAB>state`` (``action`` is deploy,
rollback, migrate or prune). Everything here is pure: entries in, decisions out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

STATES = ("built", "migrated", "live", "retired", "failed")
LOG_FIELDS = ("time", "user", "action", "release", "state")


def log_line(time: str, user: str, action: str, release: str, state: str) -> str:
    """One release-log line (no trailing newline). Tabs and newlines in fields become spaces.

    Raises:
        ValueError: ``state`` is not one of :data:`STATES`.
    """
    if state not in STATES:
        raise ValueError(f"unknown release state {state!r}; expected one of {', '.join(STATES)}")
    return "\t".join(clean_field(f) for f in (time, user, action, release, state))


def clean_field(value: str) -> str:
    """A log field as written: tabs and newlines (the line's separators) become spaces."""
    return value.replace("\t", " ").replace("\n", " ")


def parse_log_line(line: str) -> dict[str, str] | None:
    """The fields of one log line (keys :data:`LOG_FIELDS`), or None when it is not one."""
    parts = line.rstrip("\n").split("\t")
    if len(parts) != len(LOG_FIELDS) or parts[4] not in STATES:
        return None
    return dict(zip(LOG_FIELDS, parts, strict=True))


@dataclass(frozen=True)
class ReleaseInfo:
    """What the log says of one release on one host.

    Attributes:
        release: its id.
        state: the latest recorded state ("" when the log never mentions it).
        built_at: time of its first ``built`` event ("" unknown), ISO 8601 UTC.
        live_at: time it last went live ("").
        ever_live: it served at some point.
        by: who recorded its latest event.
    """

    release: str
    state: str = ""
    built_at: str = ""
    live_at: str = ""
    ever_live: bool = False
    by: str = ""


def history(log: Sequence[Mapping[str, str]]) -> dict[str, ReleaseInfo]:
    """Fold log entries (oldest first) into a :class:`ReleaseInfo` per release."""
    info: dict[str, ReleaseInfo] = {}
    for entry in log:
        release, state = entry["release"], entry["state"]
        old = info.get(release, ReleaseInfo(release))
        info[release] = ReleaseInfo(
            release=release, state=state,
            built_at=old.built_at or (entry["time"] if state == "built" else ""),
            live_at=entry["time"] if state == "live" else old.live_at,
            ever_live=old.ever_live or state == "live", by=entry["user"])
    return info


def live_sequence(log: Sequence[Mapping[str, str]]) -> list[str]:
    """Releases in the order they went live (a release appears again each time it did)."""
    return [e["release"] for e in log if e["state"] == "live"]


def build_order(log: Sequence[Mapping[str, str]]) -> Callable[[str], tuple[int, str]]:
    """A sort key ordering release ids oldest first: by their first event in ``log`` (oldest
    first); releases the log never mentions come before all others, by id."""
    first: dict[str, int] = {}
    for i, entry in enumerate(log):
        first.setdefault(entry["release"], i)
    return lambda release: (first.get(release, -1), release)


def rollback_target(current: str | None, log: Sequence[Mapping[str, str]],
                    ready: Sequence[str]) -> str | None:
    """The release that was live immediately before ``current`` and is still ready on the host.

    Walks back through :func:`live_sequence` from the end, skipping ``current``; a release
    that never went live (failed at migrate, never passed a health check) is never chosen.
    None when there is none (first deploy, or the previous live release was pruned).
    """
    for release in reversed(live_sequence(log)):
        if release != current:
            return release if release in ready else None
    return None


def prune_candidates(releases: Sequence[str], current: str | None, log: Sequence[Mapping[str, str]],
                     keep: int, protected: Sequence[str] = ()) -> list[str]:
    """Releases to delete so that at most ``keep`` remain, failed and never-live ones first.

    Never deleted: ``current``, the rollback target (:func:`rollback_target` over every
    release on disk), any release a slot points to or otherwise ``protected``, and releases
    that are newer than ``current`` and went live (a rollback just left them). Of the rest,
    releases that never served go first (oldest first), then the oldest of those that did.
    Older and newer are :func:`build_order`'s (the log's), not the ids' (two releases built
    in the same second have ids that sort by their content hash).

    Args:
        releases: release ids on the host (any order).
        current: what ``current`` points to (None: nothing).
        log: the host's release-log entries, oldest first.
        keep: releases to keep in all (>= 2).
        protected: ids that must stay (e.g. the two web slots' releases).
    """
    info = history(log)
    age = build_order(log)
    target = rollback_target(current, log, list(releases))
    keep_always = {r for r in (current, target, *protected) if r}
    keep_always |= {r for r in releases
                    if current and age(r) > age(current) and info.get(r, ReleaseInfo(r)).ever_live}
    candidates = sorted((r for r in releases if r not in keep_always), key=age)
    excess = len(releases) - keep
    if excess <= 0:
        return []
    never_live = [r for r in candidates if not info.get(r, ReleaseInfo(r)).ever_live]
    served = [r for r in candidates if info.get(r, ReleaseInfo(r)).ever_live]
    return (never_live + served)[:excess]
