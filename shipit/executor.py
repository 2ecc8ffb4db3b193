"""The executor: runs plays over hosts in batches, a bounded pool of hosts at a time.

Per host and play it costs one round trip when nothing changes: all facts the play's tasks
need are gathered by ONE remote script; each task that changes something runs its changes
and re-gathers the facts of the remaining tasks in the same remote script. Host facts ride
along with every gather (so they are fresh after each change); they are gathered on their own
first only when a play's tasks use ``facts`` in their params, ``loop`` or ``when``.

Per-host outcomes are data: whatever goes wrong while working on one host (unreachable,
a task failing, a timed-out command, output cut short, a bug in a module) is that host's
failure, recorded and reported, never an exception through the fleet. A failed host stops
running tasks and sits out the following plays of the same executor (as in Ansible);
``any_errors_fatal`` stops every host, and ``max_fail_percentage`` of a batch stops the play.
Batching (``serial``), the canary (the first batch) and max-fail live here and nowhere else;
:meth:`Executor.run_play` takes the batches and a hook to restore a failed batch.

Every remote command has a timeout: gathering facts :data:`GATHER_TIMEOUT`, a change its
task's ``timeout:`` or its module's :meth:`~shipit.modules.base.Module.timeout_of`, enforced on
the host by the script itself (:func:`changes_script`: the changes and every process they
started are stopped at that many seconds), with the transport's limit as a backstop. On Ctrl-C
(KeyboardInterrupt in the calling thread) commands in flight are cut off (the transport's
``cancel``), except changes of modules that must not stop halfway, which finish first; a
second Ctrl-C cuts those off too. The KeyboardInterrupt then propagates to the caller.
"""

from __future__ import annotations

import secrets as pysecrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import jinja2

from shipit.errors import ShipitError
from shipit.facts import FactKind, FactQuery, build_gather_script, split_gather_output, unique
from shipit.facts.host import host as host_fact
from shipit.inventory import Inventory, leader_of
from shipit.modules.base import Change, Module, Plan, PlanContext, mask
from shipit.playbook import Play, Playbook, Task, batches
from shipit.pool import TransportPool
from shipit.quoting import q
from shipit.templating import Templar, make_environment, variables_in
from shipit.transport import CommandResult, HostUnreachable, Transport

HOST_QUERY = host_fact()
GATHER_TIMEOUT = 120.0
"""Seconds a fact-gathering script may run on a host."""


@dataclass(frozen=True)
class RunOptions:
    """How to run: check mode, diffs, forks (hosts at once), extra vars (highest precedence),
    secrets (values masked everywhere), limit (an inventory pattern narrowing every play)."""

    check: bool = False
    diff: bool = False
    forks: int = 20
    extra_vars: Mapping[str, Any] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()
    limit: str | None = None


@dataclass(frozen=True)
class TaskResult:
    """One task's outcome on one host.

    ``status`` is "ok", "changed", "failed" or "skipped"; ``reasons`` says what changed (or
    would, in check mode); ``message`` why it failed or was skipped; ``duration`` in seconds.
    """

    host: str
    play: str
    task: str
    module: str
    status: str
    reasons: tuple[str, ...] = ()
    diff: str = ""
    message: str = ""
    duration: float = 0.0


@dataclass
class HostRecap:
    """Counts per host for the recap (as Ansible's stats), plus SSH round trips made."""

    ok: int = 0
    changed: int = 0
    failed: int = 0
    skipped: int = 0
    unreachable: bool = False
    message: str = ""
    execs: int = 0
    sftp: int = 0
    sftp_bytes: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "changed": self.changed, "failed": self.failed,
                "skipped": self.skipped, "unreachable": self.unreachable,
                "message": self.message, "ssh_execs": self.execs, "sftp_transfers": self.sftp,
                "sftp_bytes": self.sftp_bytes}


@dataclass
class RunResult:
    """The outcome of a run: every task result, the recap per host, wall time in seconds."""

    tasks: list[TaskResult] = field(default_factory=list)
    recap: dict[str, HostRecap] = field(default_factory=dict)
    duration: float = 0.0
    stopped: str = ""

    @property
    def failed(self) -> bool:
        """True when any host failed a task or was unreachable, or the run was stopped."""
        return bool(self.stopped) or any(r.failed or r.unreachable for r in self.recap.values())

    def failed_hosts(self) -> list[str]:
        return [h for h, r in self.recap.items() if r.failed or r.unreachable]


@dataclass(frozen=True)
class PlayResult:
    """What one :meth:`Executor.run_play` call did.

    Attributes:
        play: the play's name.
        hosts: the hosts it ran on, in order (after ``--limit``).
        failed: host -> why, for hosts that failed a task (last failure's message).
        unreachable: host -> why, for hosts that could not be reached.
        tasks: the task results of this call only.
        stopped: why the play stopped early ("" when it ran to the end).
        batches: the batches it ran, in order (a stopped play ran fewer than planned).
    """

    play: str
    hosts: tuple[str, ...] = ()
    failed: Mapping[str, str] = field(default_factory=dict)
    unreachable: Mapping[str, str] = field(default_factory=dict)
    tasks: tuple[TaskResult, ...] = ()
    stopped: str = ""
    batches: tuple[tuple[str, ...], ...] = ()

    @property
    def ok(self) -> bool:
        """True when every host got through and the play was not stopped."""
        return not (self.failed or self.unreachable or self.stopped)

    @property
    def succeeded(self) -> tuple[str, ...]:
        """Hosts that got through every task (as fabric's ``GroupResult.succeeded``)."""
        return tuple(h for h in self.hosts if h not in self.failed and h not in self.unreachable
                     and any(h in b for b in self.batches))

    def changed(self) -> int:
        """Tasks of this call that changed something."""
        return sum(1 for t in self.tasks if t.status == "changed")


BatchHook = Callable[[list[str], list[str]], None]
"""``on_batch_failed(batch, failed_hosts)``: called when a batch goes over max-fail, before the
play stops (e.g. to put the batch's other hosts back on their previous release)."""

AfterBatch = Callable[[int, list[str], list[str]], Mapping[str, str]]
"""``after_batch(index, batch, failed_hosts) -> {host: why}``: called when a batch has run
(``index`` 0 is the canary), before max-fail is judged; the hosts it returns count as failed
(e.g. a canary that crashed while it was watched)."""


class Reporter(Protocol):
    """Receives the executor's progress (the executor prints nothing itself; the console
    implementation is :class:`shipit.report.ConsoleReporter`). ``task_done`` and
    ``host_unreachable`` are called from the worker threads, several at once."""

    def play_start(self, play: Play, hosts: Sequence[str]) -> None:
        """A play starts on ``hosts`` (after ``--limit``), in the calling thread."""
        ...

    def task_done(self, result: TaskResult) -> None:
        """A task finished on one host (any status)."""
        ...

    def host_unreachable(self, host: str, message: str) -> None:
        """``host`` could not be reached; ``message`` says why."""
        ...


class LiveOutput(Protocol):
    """A reporter that also wants the change scripts' output live (``-vv``): when its
    ``streams_output`` is true, the executor streams each change script and calls
    ``remote_output(host, line)`` for every whole line it prints (secrets masked), from the
    worker threads, several at once."""

    streams_output: bool

    def remote_output(self, host: str, line: str) -> None:
        ...


class NullReporter:
    """A reporter that prints nothing (for tests and library use)."""

    def play_start(self, play: Play, hosts: Sequence[str]) -> None:
        pass

    def task_done(self, result: TaskResult) -> None:
        pass

    def host_unreachable(self, host: str, message: str) -> None:
        pass


@dataclass(frozen=True)
class _Instance:
    """A task (or one loop item of it) rendered for one host."""

    task: Task
    params: Mapping[str, Any]
    become: bool
    queries: tuple[FactQuery, ...]
    label: str


class _StopFlag:
    def __init__(self) -> None:
        self.event = threading.Event()
        self.reason = ""

    def stop(self, reason: str) -> None:
        if not self.event.is_set():
            self.reason = reason
            self.event.set()


class Executor:
    """Runs playbooks against an inventory through a transport pool.

    Args:
        inventory: the loaded inventory.
        pool: one transport per host (SSH, or fakes in unit tests).
        modules: module registry (name -> Module).
        kinds: fact kind registry (name -> FactKind).
        reporter: progress receiver.
        options: see :class:`RunOptions`.
        local_dir: base directory for local paths in tasks (template ``src``, upload ``src``).
    """

    def __init__(self, inventory: Inventory, pool: TransportPool, modules: Mapping[str, Module],
                 kinds: Mapping[str, FactKind], reporter: Reporter | None = None,
                 options: RunOptions | None = None, local_dir: str = ".") -> None:
        self.inventory = inventory
        self.pool = pool
        self.modules = modules
        self.kinds = kinds
        self.reporter = reporter or NullReporter()
        self.options = options or RunOptions()
        self.local_dir = local_dir
        self.env = make_environment()
        self._shared_variables = inventory.shared_variables()  # computed once, not per host
        self._facts_first: dict[int, tuple[Play, bool]] = {}  # id(play) -> (play, answer)
        self.nonce = pysecrets.token_hex(8)
        self.host_facts: dict[str, Mapping[str, Any]] = {}
        self.result = RunResult()
        self.interrupted = False  # a Ctrl-C arrived during this executor's work
        self._dead: set[str] = set()
        self._in_flight: dict[str, bool] = {}  # host -> its running command may be cut off
        self._lock = threading.Lock()

    # ---- public ---------------------------------------------------------------------------
    def run_playbook(self, playbook: Playbook) -> RunResult:
        """Run every play in order; returns the :class:`RunResult` (never raises for hosts).

        Raises:
            KeyboardInterrupt: Ctrl-C (commands in flight cut off, see the module doc).
        """
        started = time.monotonic()
        self.local_dir = playbook.directory
        for play in playbook.plays:
            if self.run_play(play).stopped:
                break
        self.result.duration = time.monotonic() - started
        self._collect_stats()
        return self.result

    def run_play(self, play: Play, hosts: Sequence[str] | None = None, *,
                 batch_plan: Sequence[Sequence[str]] | None = None,
                 on_batch_failed: BatchHook | None = None,
                 after_batch: AfterBatch | None = None) -> PlayResult:
        """Run one play over ``hosts`` (default: its pattern), batch by batch.

        Args:
            play: the play; its ``serial`` makes the batches (the first is the canary) and
                its ``max_fail_percentage`` decides when the play stops (None: failed hosts
                drop out and the play goes on, even when a whole batch failed, where Ansible
                would stop; ``any_errors_fatal`` still stops it).
            hosts: the hosts to run on (still narrowed by ``--limit``).
            batch_plan: explicit batches instead of ``serial`` (hosts outside ``hosts`` or
                the limit are dropped; empty batches skipped).
            on_batch_failed: called with (batch, failed hosts) when a batch goes over
                max-fail, before the play stops.
            after_batch: see :data:`AfterBatch` (a canary's bake time).

        Returns:
            A :class:`PlayResult`; ``stopped`` says why the play stopped early.

        Raises:
            KeyboardInterrupt: Ctrl-C (after cutting off what could be, see the module doc).
        """
        pattern = play.hosts
        if "{{" in pattern:
            pattern = str(Templar(self.env, self.options.extra_vars).render(pattern))
        selected = list(hosts) if hosts is not None else self.inventory.select(pattern)
        if self.options.limit:
            allowed = set(self.inventory.select(self.options.limit))
            selected = [h for h in selected if h in allowed]
        selected = [h for h in selected if h not in self._dead]
        for h in selected:
            self.result.recap.setdefault(h, HostRecap())
        self.reporter.play_start(play, selected)
        first_task = len(self.result.tasks)
        ran: list[tuple[str, ...]] = []
        stopped = ""
        if batch_plan is None:
            plan = batches(selected, play.serial) if selected else []
        else:
            plan = [[h for h in b if h in selected] for b in batch_plan]
        stop = _StopFlag()
        for index, batch in enumerate(b for b in plan if b):
            failed = self._run_batch(play, batch, selected, stop)
            ran.append(tuple(batch))
            if stop.event.is_set():
                stopped = stop.reason
                break
            if after_batch is not None:
                for host, why in after_batch(index, list(batch), list(failed)).items():
                    self._record(TaskResult(host, play.name, "after the batch", "-", "failed", message=why))
                    with self._lock:
                        self._dead.add(host)
                    if host not in failed:
                        failed.append(host)
            if play.max_fail_percentage is not None and batch:
                pct = 100.0 * len(failed) / len(batch)
                if pct > play.max_fail_percentage:
                    if on_batch_failed is not None:
                        on_batch_failed(list(batch), failed)
                    stopped = (f"play '{play.name}' stopped: {len(failed)} of {len(batch)} hosts "
                               f"failed in a batch ({pct:.0f}% > max_fail_percentage "
                               f"{play.max_fail_percentage:g}%)")
                    break
        if stopped:
            self.result.stopped = stopped
        return self._play_result(play, selected, first_task, ran, stopped)

    def _play_result(self, play: Play, hosts: list[str], first_task: int,
                     ran: list[tuple[str, ...]], stopped: str) -> PlayResult:
        with self._lock:
            tasks = tuple(self.result.tasks[first_task:])
            failed: dict[str, str] = {}
            for t in tasks:
                if t.status == "failed" and t.host in hosts:
                    failed[t.host] = t.message
            unreachable = {h: self.result.recap[h].message for h in hosts
                           if self.result.recap[h].unreachable and any(h in b for b in ran)}
        for h in unreachable:
            failed.pop(h, None)
        return PlayResult(play.name, tuple(hosts), failed, unreachable, tasks, stopped, tuple(ran))

    # ---- batches --------------------------------------------------------------------------
    def _run_batch(self, play: Play, batch: list[str], play_hosts: list[str], stop: _StopFlag) -> list[str]:
        results = self._parallel(batch, lambda h: self._run_host(play, h, play_hosts, stop), stop)
        return [host for host, ok in zip(batch, results, strict=True) if not ok]

    def _parallel(self, hosts: Sequence[str], fn: Callable[[str], Any],
                  stop: _StopFlag | None = None) -> list[Any]:
        """``fn(host)`` for every host, at most ``forks`` at once; results in ``hosts`` order.

        On KeyboardInterrupt: stops starting hosts, cuts off commands in flight that may be
        cut (see the module doc), waits for the rest, then re-raises. A second Ctrl-C while
        waiting cuts off everything.
        """
        stop = stop or _StopFlag()
        workers = max(1, min(self.options.forks, len(hosts)))
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="shipit-host")
        futures: list[Future[Any]] = []
        try:
            for h in hosts:
                futures.append(pool.submit(fn, h))
            pending = set(futures)
            while pending:
                _, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
        except KeyboardInterrupt:
            stop.stop("interrupted (Ctrl-C)")
            self.interrupted = True
            for f in futures:
                f.cancel()
            cancelled = self._cancel_in_flight(everything=False)
            try:
                wait(futures)
            except KeyboardInterrupt:
                cancelled += self._cancel_in_flight(everything=True)
                wait(futures)
            pool.shutdown(wait=True)
            for transport in cancelled:  # usable again: the caller frees the lock, reads states
                resume = getattr(transport, "resume", None)
                if resume is not None:
                    resume()
            raise
        pool.shutdown(wait=True)
        return [f.result() for f in futures]

    def _cancel_in_flight(self, everything: bool) -> list[Transport]:
        """Cut off the commands in flight (those that may be cut, or ``everything``)."""
        with self._lock:
            running = dict(self._in_flight)
        cancelled: list[Transport] = []
        for host, interruptible in running.items():
            if interruptible or everything:
                transport = self.pool.get(host)
                cancel = getattr(transport, "cancel", None)
                if cancel is not None:
                    cancel()
                    cancelled.append(transport)
        return cancelled

    def _record(self, result: TaskResult) -> None:
        with self._lock:
            self.result.tasks.append(result)
            recap = self.result.recap.setdefault(result.host, HostRecap())
            setattr(recap, result.status, getattr(recap, result.status) + 1)
        self.reporter.task_done(result)

    def _unreachable(self, host: str, message: str) -> None:
        with self._lock:
            recap = self.result.recap.setdefault(host, HostRecap())
            recap.unreachable = True
            recap.message = message
            self._dead.add(host)
        self.reporter.host_unreachable(host, message)

    def _collect_stats(self) -> None:
        for host, transport in self.pool.opened().items():
            recap = self.result.recap.setdefault(host, HostRecap())
            recap.execs = transport.stats.execs
            recap.sftp = transport.stats.sftp
            recap.sftp_bytes = transport.stats.sftp_bytes

    # ---- one host ---------------------------------------------------------------------------
    def _run_host(self, play: Play, host: str, play_hosts: list[str], stop: _StopFlag) -> bool:
        """Run the play on one host. Returns False when the host failed or was unreachable."""
        if stop.event.is_set():
            return True  # the run is stopping: this host was not started
        try:
            transport = self.pool.get(host)
            if host not in self.host_facts and self._host_facts_first(play):
                facts = self._gather(transport, [HOST_QUERY], become=False)
                self.host_facts[host] = facts[HOST_QUERY]
            return self._run_tasks(play, host, transport, play_hosts, stop)
        except HostUnreachable as exc:
            self._unreachable(host, mask(exc.message, self.options.secrets))
            if play.any_errors_fatal:
                stop.stop(f"host {host} unreachable in play '{play.name}' (any_errors_fatal)")
            return False
        except Exception as exc:  # noqa: BLE001 - one host's trouble is that host's failure
            message = exc.message if isinstance(exc, ShipitError) else f"{type(exc).__name__}: {exc}"
            if stop.event.is_set() and self.interrupted:
                message = f"interrupted: {message}"
            self._record(TaskResult(host, play.name, "(host)", "-", "failed",
                                    message=mask(message, self.options.secrets)))
            return self._host_failed(play, host, stop)

    def _host_facts_first(self, play: Play) -> bool:
        """:meth:`_needs_host_facts_first`, worked out once per play rather than per host."""
        with self._lock:
            if id(play) not in self._facts_first:  # the play is kept, so its id stays its own
                self._facts_first[id(play)] = (play, self._needs_host_facts_first(play))
            return self._facts_first[id(play)][1]

    def _needs_host_facts_first(self, play: Play) -> bool:
        """Whether host facts must be gathered before rendering the play's tasks.

        Only when a task's params, ``loop`` or ``when`` use ``facts`` (or the play has no tasks,
        as ``shipit facts``); otherwise host facts ride along with the play's own gather and a
        no-op play costs a single round trip per host.
        """
        if not play.tasks:
            return True
        for task in (*play.tasks, *play.handlers):
            names = variables_in(self.env, [dict(task.params), task.loop]) | \
                variables_in(self.env, list(task.when), expression=True)
            src = task.params.get("src")
            if task.module in ("template", "systemd_unit") and isinstance(src, str) and "{{" not in src:
                try:  # a template file rendered on the runner may use facts too
                    names |= variables_in(self.env, _read_local(str(Path(self.local_dir, src))).decode())
                except (OSError, UnicodeDecodeError, jinja2.TemplateError):
                    return True  # the task will report the problem; gather first to be safe
            if "facts" in names:
                return True
        return False

    def _variables(self, play: Play, host: str, play_hosts: list[str]) -> dict[str, Any]:
        inv = self.inventory
        h = inv.hosts[host]
        variables = inv.host_vars(host, play.vars, self.options.extra_vars)
        variables.update(self._shared_variables)
        variables.update({
            "inventory_hostname": host,
            "address": h.address,
            "group_names": [g for g in h.groups if g != "all"],
            "play_hosts": list(play_hosts),
            "facts": dict(self.host_facts.get(host, {})),
        })
        if "leader" not in self.options.extra_vars:  # the deploy names its leader itself
            try:
                variables["leader"] = leader_of(inv, list(play_hosts) or [host])
            except ValueError:
                variables["leader"] = play_hosts[0] if play_hosts else host
        variables["is_leader"] = host == variables["leader"]
        return variables

    def _instances(self, tasks: Sequence[Task], play: Play, host: str, play_hosts: list[str],
                   templar: Templar) -> tuple[list[_Instance], list[TaskResult]]:
        """Render tasks for ``host``: the instances to plan, and results for skipped/bad ones."""
        instances: list[_Instance] = []
        early: list[TaskResult] = []
        for task in tasks:
            module = self.modules[task.module]
            if task.run_once and play_hosts and host != play_hosts[0]:
                early.append(TaskResult(host, play.name, task.name, task.module, "skipped",
                                        message=f"run_once: runs on {play_hosts[0]} only"))
                continue
            try:
                items = [None] if task.loop is None else templar.render(task.loop)
                if not isinstance(items, list):
                    raise jinja2.TemplateError(f"loop must give a list, got {items!r}")
                for item in items:
                    local = Templar(self.env, {**templar.variables, "item": item}) if task.loop is not None else templar
                    label = task.name if task.loop is None else f"{task.name} ({item})"
                    failed_when = [c for c in task.when if not local.truth(c)]
                    if failed_when:
                        early.append(TaskResult(host, play.name, label, task.module, "skipped",
                                                message=f"when: {failed_when[0]} is false"))
                        continue
                    params = local.render(dict(task.params))
                    problems = self._check_rendered(module, params)
                    if problems:
                        raise jinja2.TemplateError("; ".join(problems))
                    become = task.become if task.become is not None else play.become
                    queries = module.facts(params) + (module.diff_facts(params) if self.options.diff else [])
                    instances.append(_Instance(task, params, become, tuple(queries), label))
            except jinja2.TemplateError as exc:
                early.append(TaskResult(host, play.name, task.name, task.module, "failed",
                                        message=f"{task.file}:{task.line}: {mask(str(exc), self.options.secrets)}"))
        return instances, early

    @staticmethod
    def _check_rendered(module: Module, params: Mapping[str, Any]) -> list[str]:
        problems = []
        for key, spec in module.params.items():
            value = params.get(key)
            if value is None:
                continue
            if not spec.accepts(value):
                problems.append(f"{module.name}.{key}: expected {spec.expected()}, rendered to {value!r}")
        problems += [f"{module.name}.{k}: {m}" for k, m in module.check_params(params)]
        return problems

    def _secrets_of(self, instances: Sequence[_Instance]) -> tuple[str, ...]:
        found = list(self.options.secrets)
        for inst in instances:
            for key, spec in self.modules[inst.task.module].params.items():
                value = inst.params.get(key)
                if spec.secret and isinstance(value, str) and value:
                    found.append(value)
        return tuple(found)

    def _run_tasks(self, play: Play, host: str, transport: Transport, play_hosts: list[str],
                   stop: _StopFlag) -> bool:
        templar = Templar(self.env, self._variables(play, host, play_hosts))
        instances, early = self._instances(play.tasks, play, host, play_hosts, templar)
        secrets = self._secrets_of(instances)
        for r in early:
            self._record(r)
        if any(r.status == "failed" for r in early):
            return self._host_failed(play, host, stop)
        become = any(i.become for i in instances) or play.become
        notified: list[str] = []
        ok = self._apply_instances(play, host, transport, instances, become, secrets, stop, notified,
                                   templar)
        if not ok:
            return self._host_failed(play, host, stop)
        handlers = [h for h in play.handlers if h.name in notified]
        if handlers and not stop.event.is_set():
            h_instances, h_early = self._instances(handlers, play, host, play_hosts, templar)
            for r in h_early:
                self._record(r)
                if r.status == "failed":
                    return self._host_failed(play, host, stop)
            if not self._apply_instances(play, host, transport, h_instances, become,
                                         secrets + self._secrets_of(h_instances), stop, [], templar):
                return self._host_failed(play, host, stop)
        return True

    def _host_failed(self, play: Play, host: str, stop: _StopFlag) -> bool:
        with self._lock:
            self._dead.add(host)
        if play.any_errors_fatal:
            stop.stop(f"host {host} failed in play '{play.name}' (any_errors_fatal)")
        return False

    def _apply_instances(self, play: Play, host: str, transport: Transport,
                         instances: list[_Instance], become: bool, secrets: tuple[str, ...],
                         stop: _StopFlag, notified: list[str], templar: Templar) -> bool:
        if not instances:
            return True
        facts = self._gather(transport, [HOST_QUERY] + unique(q for i in instances for q in i.queries), become)
        for index, inst in enumerate(instances):
            if stop.event.is_set():
                return True
            started = time.monotonic()
            self.host_facts[host] = facts.get(HOST_QUERY, self.host_facts.get(host, {}))
            ctx = PlanContext(host=host, host_facts=self.host_facts[host], check=self.options.check,
                              diff=self.options.diff, read_local=_read_local,
                              local_path=lambda p: str(Path(self.local_dir, p)),
                              render=templar.render_text,
                              secrets=secrets)
            module = self.modules[inst.task.module]
            more = [q for q in module.more_facts(inst.params, facts) if q not in facts]
            if more:
                facts = {**facts, **self._gather(transport, more, become)}
            try:
                plan = module.plan(inst.params, facts, ctx)
            except (OSError, jinja2.TemplateError, ValueError) as exc:
                plan = Plan(failed=f"{type(exc).__name__}: {exc}")
            base: dict[str, Any] = dict(host=host, play=play.name, task=inst.label, module=inst.task.module)
            if plan.failed:
                self._record(TaskResult(**base, status="failed", message=mask(plan.failed, secrets),
                                        duration=time.monotonic() - started))
                if not inst.task.ignore_errors:
                    return False
                continue
            if plan.skipped:
                self._record(TaskResult(**base, status="skipped", message=plan.skipped,
                                        duration=time.monotonic() - started))
                continue
            if not plan.changes:
                self._record(TaskResult(**base, status="ok", duration=time.monotonic() - started))
                continue
            reasons = tuple(mask(c.reason, secrets) for c in plan.changes)
            diff = "".join(mask(c.diff, secrets) for c in plan.changes) if self.options.diff else ""
            if self.options.check:
                self._record(TaskResult(**base, status="changed", reasons=reasons, diff=diff,
                                        message="check mode: not applied",
                                        duration=time.monotonic() - started))
                notified.extend(n for n in inst.task.notify if n not in notified)
                continue
            remaining = unique(q for i in instances[index + 1:] for q in i.queries)
            timeout = inst.task.timeout or module.timeout_of(inst.params)
            try:
                rc, output, facts_after = self._apply(transport, plan.changes, inst.become,
                                                      [HOST_QUERY] + remaining, timeout,
                                                      module.interruptible)
            except HostUnreachable:
                raise
            except ShipitError as exc:  # timed out, cut off by Ctrl-C: this task failed
                self._record(TaskResult(**base, status="failed", reasons=reasons, diff=diff,
                                        message=mask(exc.message, secrets),
                                        duration=time.monotonic() - started))
                return False
            if rc != 0:
                tail = "\n".join(output.strip().splitlines()[-15:])
                self._record(TaskResult(**base, status="failed", reasons=reasons, diff=diff,
                                        message=mask(f"exit {rc}: {tail}", secrets),
                                        duration=time.monotonic() - started))
                if not inst.task.ignore_errors:
                    return False
                facts = self._gather(transport, [HOST_QUERY] + remaining, become)
                continue
            self._record(TaskResult(**base, status="changed", reasons=reasons, diff=diff,
                                    duration=time.monotonic() - started))
            notified.extend(n for n in inst.task.notify if n not in notified)
            facts = {**facts, **facts_after}
        # the host facts gathered after the last change are the ones the next play renders with
        # (a play installing PostgreSQL, then one reading its version from the facts)
        self.host_facts[host] = facts.get(HOST_QUERY, self.host_facts.get(host, {}))
        return True

    def gather_facts(self, hosts: Sequence[str], queries: Sequence[FactQuery],
                     become: bool = True) -> dict[str, dict[FactQuery, Any] | ShipitError]:
        """Gather ``queries`` (plus host facts) on every host in parallel, one round trip each.

        Returns per host either ``{query: value}`` or the error that host gave: a
        :class:`HostUnreachable`, or a :class:`ShipitError` saying what went wrong (output cut
        short, timed out, ...). Never raises for a host.

        Raises:
            KeyboardInterrupt: Ctrl-C (the gathers in flight are cut off).
        """
        def one(host: str) -> dict[FactQuery, Any] | ShipitError:
            try:
                facts = self._gather(self.pool.get(host), [HOST_QUERY, *queries], become)
            except ShipitError as exc:
                return exc
            except Exception as exc:  # noqa: BLE001 - one host's trouble is that host's alone
                return ShipitError(f"{host}: {type(exc).__name__}: {exc}")
            self.host_facts[host] = facts[HOST_QUERY]
            return facts

        results = self._parallel(list(hosts), one)
        return dict(zip(hosts, results, strict=True))

    # ---- remote scripts ---------------------------------------------------------------------
    def _run_remote(self, transport: Transport, script: str, become: bool, timeout: float,
                    interruptible: bool = True, live: bool = False) -> Any:
        """``transport.run`` with a timeout, registered as in flight (for Ctrl-C). With
        ``live`` and a reporter that streams (:class:`LiveOutput`), the script's stderr
        reaches the reporter line by line as it runs (its stdout is kept for parsing)."""
        with self._lock:
            self._in_flight[transport.host] = interruptible
        try:
            if live and getattr(self.reporter, "streams_output", False):
                return self._stream_remote(transport, script, become, timeout)
            return transport.run(script, become=become, timeout=timeout)
        finally:
            with self._lock:
                self._in_flight.pop(transport.host, None)

    def _stream_remote(self, transport: Transport, script: str, become: bool, timeout: float) -> CommandResult:
        """:meth:`_run_remote` streaming: the same :class:`CommandResult`, and each stderr line
        handed to the reporter's ``remote_output`` (secrets, and each line of a multi-line
        secret, masked) as it arrives. Raises what ``transport.stream`` raises."""
        from shipit.streaming import LineSplitter

        show = self.reporter.remote_output  # type: ignore[attr-defined]
        terms = live_mask_terms(self.options.secrets)
        splitter = LineSplitter()
        chunks: dict[str, list[bytes]] = {"stdout": [], "stderr": []}

        def sink(stream: str, data: bytes) -> None:
            chunks[stream].append(data)
            if stream == "stderr":
                for line in splitter.feed(data):
                    show(transport.host, mask(line, terms))

        try:
            rc = transport.stream(script, sink, become=become, timeout=timeout)
        finally:
            for line in splitter.flush():
                show(transport.host, mask(line, terms))
        return CommandResult(rc, b"".join(chunks["stdout"]).decode("utf-8", "replace"),
                             b"".join(chunks["stderr"]).decode("utf-8", "replace"))

    def _gather(self, transport: Transport, queries: list[FactQuery], become: bool) -> dict[FactQuery, Any]:
        """Run one gather script; raises HostUnreachable or ShipitError (cut short, timed out)."""
        queries = unique(queries)
        script = "export LC_ALL=C\n" + build_gather_script(queries, self.kinds, self.nonce)
        result = self._run_remote(transport, script, become, GATHER_TIMEOUT)
        if result.rc != 0 and "@@shipit:" not in result.stdout:
            raise HostUnreachable(f"{transport.host}: gathering facts failed (exit {result.rc}): "
                                  f"{result.stderr.strip()[-500:]}")
        try:
            return split_gather_output(result.stdout, queries, self.kinds, self.nonce)
        except ValueError as exc:
            raise ShipitError(f"{transport.host}: the facts' output was cut short (exit {result.rc}"
                              f"{', killed' if result.rc >= 128 else ''}): {exc}; "
                              f"{result.stderr.strip()[-300:]}") from None

    def _apply(self, transport: Transport, changes: Sequence[Change], become: bool,
               refresh: list[FactQuery], timeout: float = 600.0,
               interruptible: bool = True) -> tuple[int, str, dict[FactQuery, Any]]:
        """Upload, run the changes, and re-gather ``refresh`` in the same remote script.

        ``timeout``: seconds the remote script may run. Returns (exit status of the changes,
        their stdout+stderr, refreshed facts; empty when they could not be read).
        """
        for change in changes:
            if change.upload is not None:
                transport.put(change.upload.local, change.upload.remote)
                # counted here, once for every transport: the bytes a deploy sent each host
                transport.stats.sftp_bytes += Path(change.upload.local).stat().st_size
        body = "\n".join(c.script for c in changes)
        marker = f"@@shipit:{self.nonce}:rc:"
        script = (f"export LC_ALL=C\n{changes_script(body, timeout, self.nonce)}"
                  f"echo \"{marker}$__shipit_rc\"\n"
                  f"if [ \"$__shipit_rc\" = 0 ]; then\n"
                  f"{build_gather_script(refresh, self.kinds, self.nonce)}fi\n")
        # the script stops the changes itself at ``timeout``; the transport's limit is the
        # backstop, with room for the stop's grace and the re-gather
        result = self._run_remote(transport, script, become, timeout + KILL_GRACE + GATHER_TIMEOUT,
                                  interruptible, live=True)
        if timeout_line(timeout) in result.stderr:
            raise ShipitError(f"{transport.host}: the task was stopped after {timeout:g} s (its timeout); "
                              "it had not finished")
        head, sep, tail = result.stdout.partition(marker)
        if not sep:
            return (result.rc or 1), (result.stderr + head), {}
        rc_text, _, rest = tail.partition("\n")
        rc = int(rc_text.strip()) if rc_text.strip().isdigit() else 1
        try:
            facts = split_gather_output(rest, unique(refresh), self.kinds, self.nonce) if rc == 0 else {}
        except ValueError as exc:
            return 1, result.stderr + f"\nshipit: the refreshed facts were cut short: {exc}", {}
        return rc, result.stderr, facts


def live_mask_terms(secrets: Sequence[str]) -> list[str]:
    """What to mask in output shown line by line: each secret, and each line (3 characters
    or more) of a secret that spans lines (a line of output never holds a whole one)."""
    terms = [s for s in secrets if s]
    for secret in terms[:]:
        if "\n" in secret:
            terms += [part for part in secret.splitlines() if len(part.strip()) >= 3]
    return terms


KILL_GRACE = 5.0
"""Seconds a change stopped at its timeout has between SIGTERM and SIGKILL."""


def timeout_line(timeout: float) -> str:
    """The line the remote script prints on stderr when it stopped the changes at ``timeout``."""
    return f"shipit: stopped after {timeout:g} s (the task's timeout)"


def _seconds(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".")


def changes_script(body: str, timeout: float, nonce: str) -> str:
    """POSIX sh that runs ``body`` (``set -e``, stdin /dev/null, stdout to stderr) and stops
    it after ``timeout`` seconds; leaves its exit status in ``$__shipit_rc``.

    The body runs in a session of its own (``setsid``, util-linux) so that a watchdog (a
    session of its own too, stopped whole with its ``sleep``) can stop all of it,
    grandchildren included: SIGTERM to the session's process group at ``timeout``
    (after printing :func:`timeout_line` on stderr), SIGKILL :data:`KILL_GRACE` seconds
    later. HUP/INT/TERM reaching the script (Ctrl-C: the SSH ``signal`` request, the sudo
    wrapper) are passed on to the body's group and the watchdog. The body is fed as a here-doc
    on fd 3 (no argv length limit; its stdin stays /dev/null), so it sees none of the
    script's variables but the exported ones. The same shape as coreutils ``timeout -k``,
    which cannot be used here: it would take the body out of reach of the Ctrl-C signal.
    """
    eof = f"__shipit_body_{nonce}"
    t, grace = _seconds(timeout), _seconds(KILL_GRACE)
    # the watchdog is a session of its own too, so that stopping it stops its ``sleep``: a
    # sleep left behind would hold the channel's stderr open until the timeout (a trap that
    # kills "$!" misses the sleep when the signal comes between the fork and the assignment)
    watchdog = ('sleep "$1" </dev/null >/dev/null 2>&1 || exit 0; echo "$4" >&2; '
                'kill -TERM -"$2" 2>/dev/null; sleep "$3" </dev/null >/dev/null 2>&1 || exit 0; '
                'kill -KILL -"$2" 2>/dev/null')
    # before its setsid() the watchdog has no group of its own: then kill it by its pid
    stop_watchdog = 'kill -TERM -"$__shipit_wd" 2>/dev/null || kill -TERM "$__shipit_wd" 2>/dev/null'
    on_signal = 'kill -TERM -"$__shipit_job" 2>/dev/null; ' + stop_watchdog
    return (f"setsid sh -e /dev/fd/3 3<<'{eof}' </dev/null 1>&2 &\n{body}\n{eof}\n"
            "__shipit_job=$!\n"
            f"setsid sh -c {q(watchdog)} shipit-watchdog {t} \"$__shipit_job\" {grace} "
            f"{q(timeout_line(timeout))} </dev/null >/dev/null &\n"
            "__shipit_wd=$!\n"
            f"trap {q(on_signal)} HUP INT TERM\n"
            # a trapped signal ends ``wait`` early: wait again until the body is gone
            "while :; do wait \"$__shipit_job\"; __shipit_rc=$?; kill -0 \"$__shipit_job\" 2>/dev/null || break; done\n"
            # and its group once more once it is gone: stopped by its pid between its fork of
            # ``sleep`` and the group kill finding its group, it leaves that sleep in the group
            f"{stop_watchdog}; wait \"$__shipit_wd\" 2>/dev/null; kill -TERM -\"$__shipit_wd\" 2>/dev/null\n"
            "trap - HUP INT TERM\n")


def _read_local(path: str) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()
