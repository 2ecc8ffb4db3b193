"""How runs and deploys are printed: live progress lines, a recap table at the end, or JSON.

The executor and the Deployer print nothing themselves; they tell a reporter (here:
:class:`ConsoleReporter`), and the CLI prints the outcome (:func:`outcome_table`,
:func:`result_json`). Commands that only read (``exec``, ``facts``, ``status``, ``releases``,
``modules``) print their own tables or documents in :mod:`shipit.cli`.

``--json`` prints ONE JSON object on stdout at the end (and nothing else on stdout)::

    {"recap": {HOST: {"ok": N, "changed": N, "failed": N, "skipped": N, "unreachable": BOOL,
                      "message": "why unreachable, or empty", "ssh_execs": N, "sftp_transfers": N,
                      "sftp_bytes": N}},
     "tasks": [{"host", "play", "task", "module", "status", "reasons", "diff", "message",
                "duration"}],                       # duration in seconds
     "duration": SECONDS, "failed": BOOL, "stopped": "why the run stopped, or empty"}

(``recap`` is shaped like Ansible's ``stats``.)
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from shipit.executor import RunResult, TaskResult
from shipit.playbook import Play

STATUS_STYLE = {"ok": "green", "changed": "yellow", "failed": "bold red", "skipped": "cyan",
                "unreachable": "bold red"}


class ConsoleReporter:
    """Prints each changed/failed task as it happens (every task with ``verbose``), then a recap.

    Output goes to ``console`` (stderr when ``--json`` is on, so stdout stays pure JSON).

    Verbosity (the CLI's ``-q``, ``-v``, ``-vv``): ``verbose`` 0 or False prints changed and
    failed tasks, phases and notes; 1 (True, ``-v``) also ok and skipped tasks; 2 (``-vv``)
    also the change scripts' output live, each line prefixed with its host
    (:meth:`remote_output`; the executor streams when :attr:`streams_output`). ``quiet``
    (``-q``) prints only failed tasks, unreachable hosts, warnings and the recap.
    """

    def __init__(self, console: Console, verbose: bool | int = False, show_diff: bool = False,
                 quiet: bool = False) -> None:
        self.console = console
        self.level = int(verbose)
        self.verbose = self.level >= 1 and not quiet
        self.quiet = quiet
        self.streams_output = self.level >= 2 and not quiet
        self.show_diff = show_diff
        self._lock = threading.Lock()

    def remote_output(self, host: str, line: str) -> None:
        """A line a change script printed on ``host`` (``-vv``), shown as ``  web2 | line``
        (as text, never markup). Called from worker threads."""
        with self._lock:
            self.console.print(Text.assemble(("  " + host, "bold"), (" | ", "dim"), line), soft_wrap=True)

    def play_start(self, play: Play, hosts: Sequence[str]) -> None:
        if self.quiet:
            return
        with self._lock:
            self.console.print(Text.assemble(("PLAY ", "bold"), (play.name, "bold blue"),
                                             f"  [{len(hosts)} host{'s' if len(hosts) != 1 else ''}"
                                             f"{': ' + ', '.join(hosts) if len(hosts) <= 6 else ''}]"))

    def task_done(self, result: TaskResult) -> None:
        if result.status in ("ok", "skipped") and not self.verbose:
            return
        if self.quiet and result.status != "failed":
            return
        with self._lock:
            line = Text.assemble(("  " + result.status.ljust(8), STATUS_STYLE[result.status]),
                                 (result.host.ljust(12), "bold"), result.task)
            detail = "; ".join(result.reasons) or result.message
            if detail:
                line.append(f" — {detail}", style="dim" if result.status != "failed" else "red")
            if result.status == "failed" and result.reasons and result.message:
                line.append(f"\n      {result.message}", style="red")
            self.console.print(line, soft_wrap=True)
            if self.show_diff and result.diff:
                for diff_line in result.diff.splitlines():
                    style = "green" if diff_line.startswith("+") else "red" if diff_line.startswith("-") else "dim"
                    self.console.print(Text("      " + diff_line, style=style))

    def phase(self, name: str, detail: str = "") -> None:
        """A deploy phase starts (build, facts, lock, provision, upload, migrate, switch, prune)."""
        if self.quiet:
            return
        with self._lock:
            self.console.print(Text.assemble((name, "bold magenta"), f" {detail}" if detail else ""),
                               soft_wrap=True)

    def phase_done(self, name: str, seconds: float) -> None:
        """A deploy phase ended after ``seconds`` (cumulative for the phase)."""
        if self.quiet:
            return
        with self._lock:
            self.console.print(Text(f"  {name} {seconds:.1f} s", style="dim"))

    def note(self, text: str) -> None:
        """A line of its own (a measurement, a warning) — printed as text, never as markup;
        with ``quiet`` only warnings (text starting ``warning``)."""
        if self.quiet and not text.startswith("warning"):
            return
        with self._lock:
            self.console.print(Text("  " + text), soft_wrap=True)

    def host_unreachable(self, host: str, message: str) -> None:
        with self._lock:
            self.console.print(Text.assemble(("  unreachable ", "bold red"), (host + " ", "bold"),
                                             (message, "red")))

    def recap(self, result: RunResult, check: bool = False) -> None:
        """Print the recap table: a row per host with ok/changed/failed/skipped/unreachable."""
        table = Table(title="RECAP" + (" (check mode: nothing was changed)" if check else ""),
                      title_justify="left")
        for col in ("host", "ok", "changed", "failed", "skipped", "unreachable", "ssh execs"):
            table.add_column(col, justify="left" if col == "host" else "right")
        for host, r in result.recap.items():
            table.add_row(host, str(r.ok), _styled(r.changed, "yellow"), _styled(r.failed, "red"),
                          str(r.skipped), Text("yes", "bold red") if r.unreachable else Text("no"),
                          str(r.execs))
        self.console.print(table)
        changed = sum(r.changed for r in result.recap.values())
        summary = f"{changed} change{'s' if changed != 1 else ''}" + (" would be made" if check else "")
        if changed == 0:
            summary = "no changes" + (" would be made" if check else "")
        self.console.print(f"{summary}; {result.duration:.1f} s")
        if result.stopped:
            self.console.print(Text(result.stopped, style="bold red"))


def outcome_table(outcome: Any) -> Table:
    """A table of a :class:`shipit.deploy.DeployOutcome`: per web host, what it serves and how
    it got there, then a line of phase durations (``build 0.9 s · upload 0.3 s · …``)."""
    table = Table(title=f"{outcome.action}: {outcome.release or '-'}", title_justify="left",
                  caption=phases_line(outcome) or None, caption_justify="left")
    for col in ("host", "serving", "result", "why"):
        table.add_column(col)
    for host, o in outcome.hosts.items():
        style = "green" if o.result in ("switched", "serving it") else "red" if o.result in ("failed", "unreachable") else "yellow"
        table.add_row(host, o.serving or ("unknown" if not o.reachable else "nothing"),
                      Text(o.result, style=style), Text(o.message))
    return table


def phases_line(outcome: Any) -> str:
    """``build 0.9 s · upload 0.3 s · prepare 2.1 s · switch 1.4 s · sent 16.6 KiB/host``: each
    phase of a :class:`shipit.deploy.DeployOutcome` in the order it ran, then the most bytes
    sent to one host ("" when nothing ran), then what happened to the database backup when
    the app asks for one (``backup: took <release>``)."""
    items = [f"{k} {v:.1f} s" for k, v in outcome.durations.items()]
    sent = max(getattr(outcome, "uploaded", {}).values(), default=None)
    if sent is not None and items:
        items.append(f"sent {_bytes(sent)}/host")
    backup = getattr(outcome, "backup", "none")
    if backup and backup != "none":
        items.append(f"backup: {backup}")
    return " · ".join(items)


def _bytes(n: int) -> str:
    if n >= 2**20:
        return f"{n / 2**20:.1f} MiB"
    return f"{n / 1024:.1f} KiB" if n >= 1024 else f"{n} B"


def _styled(n: int, style: str) -> Text:
    return Text(str(n), style=style if n else "")


def result_json(result: RunResult, extra: dict[str, Any] | None = None) -> str:
    """The ``--json`` document for ``result`` (see the module docstring)."""
    doc: dict[str, Any] = {
        "recap": {h: r.as_dict() for h, r in result.recap.items()},
        "tasks": [{**asdict(t), "reasons": list(t.reasons), "duration": round(t.duration, 4)}
                  for t in result.tasks],
        "duration": round(result.duration, 3),
        "failed": result.failed,
        "stopped": result.stopped,
    }
    if extra:
        doc.update(extra)
    return json.dumps(doc, indent=2, sort_keys=False)
