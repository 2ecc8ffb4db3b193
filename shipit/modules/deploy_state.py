"""Modules for a deploy's own bookkeeping on a host: the deploy lock, release events, pruning.

Each is pure like every module (params + facts in, changes out) and unit-tested on its output;
they run as tasks of the built-in playbooks, so they are reported, masked and counted like any
other task (see ``shipit/playbooks/deploy.yml``). Paths come from :class:`shipit.layout.Layout`.

- ``deploy_lock``: ``state: locked`` takes the lock with an atomic ``mkdir`` (a lock held by
  someone else fails the task with who holds it, when, and for which release); ``state:
  unlocked`` frees it only if it is ours (``token`` equal), ``force: true`` whoever holds it.
- ``release_event``: appends a state (``built``, ``migrated``, ``live``, ``retired``,
  ``failed``) of a release to the host's release log, once: when the release's latest
  recorded state already is that state or a later one (a redeploy of a live release is not
  "built" again), nothing changes; ``failed`` is never recorded for the release a host serves.
- ``release_prune``: deletes old releases down to ``keep`` with
  :func:`shipit.releases.prune_candidates` (never ``current``, the rollback target, a slot's
  release; failed ones first), then the stored artifact parts no remaining release was
  unpacked from (:func:`shipit.modules.release_artifact.parts_to_prune`) and the store's
  temporaries. No temporary files of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shipit.facts import FactQuery
from shipit.facts.app import release_state
from shipit.layout import Layout
from shipit.modules.base import Change, Module, Param, Plan, PlanContext
from shipit.modules.release_artifact import parts_to_prune
from shipit.quoting import q
from shipit.releases import STATES, clean_field, history, prune_candidates

_RELEASE_ID = r"^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6,64}$"
# a state is not recorded again when the release's latest state already is one of these (a
# redeploy of a live release does not make it "built" again; a retried failed one does)
_ALREADY = {"built": {"built", "migrated", "live", "retired"}, "migrated": {"migrated", "live", "retired"},
            "live": {"live"}, "retired": {"retired"}, "failed": {"failed"}}


def log_append(layout: Layout, user: str, action: str, release: str, state: str) -> str:
    """Shell appending one release-log line (see :mod:`shipit.releases`), time taken on the host."""
    fields = " ".join(q(clean_field(v)) for v in (user, action, release, state))
    return (f"printf '%s\\t%s\\t%s\\t%s\\t%s\\n' \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\" {fields} "
            f">> {q(layout.release_log)}")


def _app_release_checks(params: Mapping[str, Any], release_key: str = "release") -> list[tuple[str, str]]:
    import re

    errors = []
    if not re.fullmatch(r"[a-z][a-z0-9-]{0,30}", str(params.get("app", ""))):
        errors.append(("app", "expected an app name (lowercase letters, digits, -)"))
    release = params.get(release_key)
    if release is not None and not re.fullmatch(_RELEASE_ID, str(release)):
        errors.append((release_key, "expected a release id like 20261122T181633Z-a51196c9b409"))
    return errors


class DeployLockModule(Module):
    """Take or free an app's deploy lock on a host (an atomic ``mkdir``)."""

    name = "deploy_lock"
    doc = "Take (state: locked) or free (state: unlocked) an app's deploy lock on this host."
    params = {
        "app": Param(str, required=True, help="app name"),
        "state": Param(str, default="locked", choices=("locked", "unlocked")),
        "token": Param(str, required=True, help="who=… when=… release=…: what the lock says"),
        "force": Param(bool, default=False, help="unlocked: remove it whoever holds it"),
    }

    def check_params(self, params: Mapping[str, Any]) -> list[tuple[str, str]]:
        errors = _app_release_checks(params)
        if "\n" in str(params.get("token", "")):
            errors.append(("token", "expected one line"))
        return errors

    def facts(self, params: Mapping[str, Any]) -> list[FactQuery]:
        return [release_state(params["app"])]

    def plan(self, params: Mapping[str, Any], facts: Mapping[FactQuery, Any], ctx: PlanContext) -> Plan:
        lay = Layout(params["app"])
        held = facts[release_state(params["app"])]["lock"]
        token = params["token"]
        if params["state"] == "locked":
            if held == token:
                return Plan()
            if held:
                return Plan(failed=f"the deploy lock is held ({held})")
            script = (f"mkdir -p {q(lay.root)}\n"
                      f"mkdir -m 0700 {q(lay.lock_dir)} 2>/dev/null || {{ echo \"shipit: the deploy lock is held "
                      f"($(cat {q(lay.lock_info)} 2>/dev/null))\" >&2; exit 1; }}\n"
                      f"printf '%s\\n' {q(token)} > {q(lay.lock_info)}")
            return Plan(changes=(Change("take the deploy lock", script),))
        if not held:
            return Plan()
        if held != token and not params["force"]:
            return Plan(skipped=f"the lock is someone else's ({held})")
        guard = "" if params["force"] else f"[ \"$(cat {q(lay.lock_info)} 2>/dev/null)\" = {q(token)} ] || exit 0\n"
        return Plan(changes=(Change(f"free the deploy lock ({held})", f"{guard}rm -rf {q(lay.lock_dir)}"),))


class ReleaseEventModule(Module):
    """Record a release's new state in the host's release log, once."""

    name = "release_event"
    doc = "Append a release state (built, migrated, live, retired, failed) to the release log, once."
    params = {
        "app": Param(str, required=True, help="app name"),
        "release": Param(str, required=True, help="release id"),
        "state": Param(str, required=True, choices=STATES),
        "action": Param(str, default="deploy", choices=("deploy", "rollback", "migrate")),
        "user": Param(str, default="shipit", help="who, for the log"),
        "only_if_present": Param(bool, default=False,
                                 help="record only when the release is on this host"),
    }

    def check_params(self, params: Mapping[str, Any]) -> list[tuple[str, str]]:
        return _app_release_checks(params)

    def facts(self, params: Mapping[str, Any]) -> list[FactQuery]:
        return [release_state(params["app"])]

    def plan(self, params: Mapping[str, Any], facts: Mapping[FactQuery, Any], ctx: PlanContext) -> Plan:
        state = facts[release_state(params["app"])]
        release = params["release"]
        if params["only_if_present"] and release not in state["releases"]:
            return Plan(skipped=f"release {release} is not on this host")
        latest = history(state["log"]).get(release)
        wanted = params["state"]
        if latest is not None and latest.state in _ALREADY[wanted]:
            return Plan()
        if wanted == "failed" and release == state["current"]:
            return Plan(skipped=f"release {release} serves on this host; it is not marked failed")
        script = log_append(Layout(params["app"]), params["user"], params["action"], release, params["state"])
        return Plan(changes=(Change(f"release {release}: {params['state']}", script),))


class ReleasePruneModule(Module):
    """Delete old releases of an app on a host, keeping what a rollback needs."""

    name = "release_prune"
    doc = "Delete old releases down to keep (never current, the rollback target or a slot's release)."
    params = {
        "app": Param(str, required=True, help="app name"),
        "keep": Param(int, default=5, help="releases to keep (>= 2)"),
    }

    def check_params(self, params: Mapping[str, Any]) -> list[tuple[str, str]]:
        errors = _app_release_checks(params)
        if not isinstance(params.get("keep"), int) or params["keep"] < 2:
            errors.append(("keep", "expected a number >= 2 (a rollback needs the previous release)"))
        return errors

    def facts(self, params: Mapping[str, Any]) -> list[FactQuery]:
        return [release_state(params["app"])]

    def plan(self, params: Mapping[str, Any], facts: Mapping[FactQuery, Any], ctx: PlanContext) -> Plan:
        state = facts[release_state(params["app"])]
        doomed = prune_candidates(state["releases"], state["current"], state["log"], params["keep"],
                                  protected=list(state["slots"].values()))
        lay = Layout(params["app"])
        kept = [r for r in state["releases"] if r not in doomed]
        unused = parts_to_prune(state["parts"], state["uses"], kept)
        if not doomed and not unused:
            return Plan()
        paths = [p for r in doomed for p in (lay.release(r), lay.tarball(r), lay.env_file(r))]
        paths += [p for sha in unused for p in (lay.part(sha), lay.part_dir(sha))]
        # the store's temporaries (an interrupted upload or unpack): never trusted, removed here,
        # under the deploy lock (no upload is in flight)
        script = "rm -rf -- " + " ".join(q(p) for p in paths) + \
            f"\nrm -rf -- {q(lay.parts)}/.shipit-*"
        what = [f"prune {', '.join(doomed)}"] if doomed else []
        if unused:
            what.append(f"{len(unused)} unused part{'s' if len(unused) > 1 else ''}")
        return Plan(changes=(Change(", ".join(what), script),))
