"""Pure: what ``shipit lab up`` does to the hosts a lab already has.

A lab that is up has hosts of some Debian suite (recorded in its state file). A new ``up``
asks for a set of hosts (``web1..webN``, ``db1`` with ``--db``) of one suite. This module
decides, without touching anything, which existing hosts are kept, which are removed and
which are re-created from the other suite's image, and refuses (before anything changes)
when that would destroy a host holding data without ``--prune``.

"Holding data" means a host of the ``db`` group: its PostgreSQL cluster lives in its overlay
and nothing rebuilds it. A web host is rebuilt by the next deploy, so surplus web hosts are
removed (and said so); ``db1`` is kept, running and in the inventory, until ``--prune``
(issue #11 item 8: ``lab up`` without ``--db`` once deleted a running database host).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from shipit.errors import ShipitError
from shipit.lab.naming import HostSpec

__all__ = ["UpPlan", "plan_up", "DataHostError", "DATA_GROUPS"]

#: Groups whose hosts hold data that a deploy cannot rebuild.
DATA_GROUPS = ("db",)


class DataHostError(ShipitError):
    """``lab up`` would destroy a host holding data and ``--prune`` was not given (exit 2)."""

    exit_code = 2


@dataclass(frozen=True)
class UpPlan:
    """What ``up`` does. ``hosts``: the lab's hosts afterwards, in inventory order (the wanted
    ones, then data hosts kept although not asked for). ``remove``: ``(host, why)`` deleted with
    their overlay. ``replace``: ``(host, why)`` whose overlay is wiped so they boot from the new
    suite's image. ``kept``: ``(host, why)`` data hosts kept that were not asked for."""

    hosts: tuple[HostSpec, ...]
    remove: tuple[tuple[str, str], ...] = ()
    replace: tuple[tuple[str, str], ...] = ()
    kept: tuple[tuple[str, str], ...] = ()

    def messages(self) -> list[str]:
        """One plain sentence per removed, replaced or kept host (for the progress log)."""
        return ([f"removing {h}: {why}" for h, why in self.remove]
                + [f"replacing {h}: {why}" for h, why in self.replace]
                + [f"keeping {h}: {why}" for h, why in self.kept])


def plan_up(existing: Mapping[str, tuple[HostSpec, str]], wanted: Sequence[HostSpec], suite: str,
            prune: bool, lab: str = "lab") -> UpPlan:
    """Decide what ``up`` does to the lab's ``existing`` hosts.

    Args:
        existing: host name -> ``(spec, suite)`` of each host the lab has now (a spec's
            ``group`` "" when unknown: a data host when the name is ``db<N>``).
        wanted: the hosts asked for (:func:`shipit.lab.naming.plan_hosts`).
        suite: the Debian suite asked for.
        prune: ``--prune``: data hosts not asked for are removed, and data hosts of another
            suite are re-created empty.
        lab: the lab's name, for messages.

    Returns:
        The :class:`UpPlan`.

    Raises:
        DataHostError: a data host of another suite without ``prune`` (nothing was changed).
    """
    wanted_names = {s.name for s in wanted}
    remove: list[tuple[str, str]] = []
    replace: list[tuple[str, str]] = []
    kept: list[tuple[str, str]] = []
    kept_specs: list[HostSpec] = []
    refused: list[str] = []
    for name in sorted(existing):
        spec, had = existing[name]
        data = _is_data_host(name, spec.group)
        if name not in wanted_names:
            if data and not prune:
                if had != suite:
                    refused.append(name)
                    continue
                kept.append((name, "it holds data (a database); `--prune` removes it"))
                kept_specs.append(HostSpec(name, spec.address, spec.group or "db"))
            else:
                why = "not asked for (`--prune`); its data goes with it" if data else \
                    "not among the requested web hosts"
                remove.append((name, why))
        elif had != suite:
            if data and not prune:
                refused.append(name)
                continue
            why = f"{had} -> {suite}" + ("; its data goes with it (`--prune`)" if data else "")
            replace.append((name, why))
    if refused:
        had_suites = sorted({existing[n][1] for n in refused})
        raise DataHostError(
            f"lab {lab!r}: {', '.join(refused)} run{'s' if len(refused) == 1 else ''} "
            f"{'/'.join(had_suites)} and hold{'s' if len(refused) == 1 else ''} data; booting "
            f"{suite} would delete it. Nothing was changed: pass --prune to re-create "
            f"{'it' if len(refused) == 1 else 'them'} empty, or `--suite {had_suites[0]}`.")
    return UpPlan(tuple(wanted) + tuple(kept_specs), tuple(remove), tuple(replace), tuple(kept))


def _is_data_host(name: str, group: str) -> bool:
    if group:
        return group in DATA_GROUPS
    return name.startswith("db")
