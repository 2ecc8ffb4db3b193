"""Run a module's facts and changes on THIS machine, for unit tests and sanity checks.

Not used by the executor. It mimics the executor's contract closely enough to prove that a
module's scripts work and that a second run plans no changes: facts are gathered in one ``sh``
invocation fed on stdin (:func:`shipit.facts.build_gather_script`), and each change's script
runs as ``set -e`` in its own ``sh`` fed on stdin.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shipit.facts import FactQuery, build_gather_script, split_gather_output, unique
from shipit.facts.registry import fact_kinds
from shipit.modules.base import Module, Plan, PlanContext


@dataclass(frozen=True)
class LocalRun:
    """Outcome of :func:`run_local`: the plan and each change script's (rc, stderr)."""

    plan: Plan
    results: tuple[tuple[int, str], ...]

    @property
    def ok(self) -> bool:
        return all(rc == 0 for rc, _ in self.results)


def gather_local(queries: list[FactQuery]) -> dict[FactQuery, Any]:
    """Gather ``queries`` on this machine in one ``sh`` run and parse them."""
    kinds = fact_kinds()
    queries = unique(queries)
    script = build_gather_script(queries, kinds, "local")
    out = subprocess.run(["sh", "-s"], input=script, capture_output=True, text=True,
                         check=False).stdout
    return split_gather_output(out, queries, kinds, "local")


def upload_path(remote: str) -> str:
    """Where SFTP would put ``remote`` for this user: relative paths are in the home."""
    return remote if os.path.isabs(remote) else os.path.join(os.path.expanduser("~"), remote)


def run_script(script: str) -> tuple[int, str]:
    """Run one change script as the executor does (``set -e``, on stdin); (rc, stderr).

    As this user without sudo: ``SUDO_USER`` is dropped, so uploads are looked for in ``$HOME``
    (where :func:`upload_path` puts them).
    """
    env = {k: v for k, v in os.environ.items() if k != "SUDO_USER"}
    proc = subprocess.run(["sh", "-s"], input="set -e\n(\n" + script + "\n)\n",
                          capture_output=True, text=True, check=False, env=env)
    return proc.returncode, proc.stderr


def run_local(module: Module, params: Mapping[str, Any], ctx: PlanContext,
              execute: bool = True) -> LocalRun:
    """Plan ``module`` with ``params`` against this machine and (``execute``) apply it.

    Params get their :class:`~shipit.modules.base.Param` defaults applied first.
    """
    full = {k: spec.default for k, spec in module.params.items()} | dict(params)
    queries = module.facts(full) + (module.diff_facts(full) if ctx.diff else [])
    facts = gather_local(queries)
    more = [q for q in module.more_facts(full, facts) if q not in facts]
    if more:  # as the executor: one more round trip, only when needed
        facts |= gather_local(more)
    plan = module.plan(full, facts, ctx)
    results: list[tuple[int, str]] = []
    if execute:
        for change in plan.changes:
            if change.upload is not None:      # what the executor's SFTP put does
                shutil.copyfile(change.upload.local, upload_path(change.upload.remote))
            results.append(run_script(change.script))
            if results[-1][0] != 0:
                break
    return LocalRun(plan, tuple(results))
