"""Helpers shared by the trust and fault e2e tests (issue 11): a shipit process with extra
environment or another inventory, a deploy watched line by line and signalled at a phase,
and the checks every failure path must pass (each host serves one release, the lock is free,
the output says where each host stands).

Built on ``test_deploy``'s :class:`Env`, :func:`https_get` and :func:`serving` (not copies).
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from test_deploy import DOMAIN, EXAMPLE, WEB, Env, https_get

from shipit.lab import Lab
from shipit.lab.machine import Machine
from shipit.lab.naming import HostSpec

ROOT = "/srv/example"
DB_PASSWORD = "e2e-Secret-pw-1"


@dataclasses.dataclass
class TrustEnv(Env):
    """:class:`Env` plus extra environment variables and another inventory per call."""

    after_action: float | None = None

    def run_shipit(self, *args: str | Path, app: Path | None = EXAMPLE, inventory: Path | None = None,
                   environ: Mapping[str, str] | None = None,
                   timeout: float = 900) -> subprocess.CompletedProcess[str]:
        """``shipit ARGS -i INVENTORY [--app APP]``; ``app`` None for commands without --app."""
        return subprocess.run(self.argv(*args, app=app, inventory=inventory), capture_output=True, text=True,
                              timeout=timeout, env=self.environ(environ), cwd=self.work)

    def argv(self, *args: str | Path, app: Path | None = EXAMPLE, inventory: Path | None = None) -> list[str]:
        argv = [sys.executable, "-m", "shipit.cli", *map(str, args), "-i", str(inventory or self.lab.inventory)]
        return argv + (["--app", str(app)] if app is not None else [])

    def environ(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        return {**os.environ, "HOME": str(self.home), "DB_PASSWORD": DB_PASSWORD, "COLUMNS": "200",
                **(extra or {})}

    def deploy_ok(self, *args: str, app: Path = EXAMPLE, inventory: Path | None = None,
                  environ: Mapping[str, str] | None = None, command: str = "deploy") -> dict[str, Any]:
        """Run ``deploy``/``rollback`` with --json, assert exit 0, return the document."""
        r = self.run_shipit(command, "shipit-test", "--json", *args, app=app, inventory=inventory, environ=environ)
        assert r.returncode == 0, f"{command} {args} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
        doc: dict[str, Any] = json.loads(r.stdout)
        return doc

    def signal_at(self, marker: str, signum: int, *args: str, app: Path = EXAMPLE,
                  delay: float = 0.0, timeout: float = 600) -> tuple[int, str]:
        """Start ``deploy``, send ``signum`` once a line matching the regex ``marker`` is printed
        (``delay`` seconds later), return (exit code, all output)."""
        return self.watch(marker, lambda proc: proc.send_signal(signum), *args, app=app, delay=delay,
                          timeout=timeout)

    def watch(self, marker: str, action: Callable[[subprocess.Popen[str]], None], *args: str,
              app: Path = EXAMPLE, delay: float = 0.0, timeout: float = 600) -> tuple[int, str]:
        """Start ``deploy ARGS``; once a line matches the regex ``marker``, call
        ``action(process)`` ``delay`` seconds later (a signal, a power cut); return (exit code,
        all output). Fails if the marker never shows. Sets :attr:`after_action`: seconds from
        the action to the process's exit."""
        proc = subprocess.Popen(self.argv("deploy", "shipit-test", *args, app=app), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, cwd=self.work, env=self.environ())
        assert proc.stdout is not None
        seen: list[str] = []
        timer: threading.Timer | None = None
        acted: list[float] = []

        def act(p: subprocess.Popen[str]) -> None:
            acted.append(time.monotonic())
            action(p)

        try:
            for line in proc.stdout:
                seen.append(line)
                if timer is None and re.search(marker, line):
                    timer = threading.Timer(delay, act, (proc,))
                    timer.start()
            code = proc.wait(timeout=timeout)
            self.after_action = time.monotonic() - acted[0] if acted else None
        finally:
            if timer is not None:
                timer.join()
            if proc.poll() is None:
                proc.kill()
        output = "".join(seen)
        assert timer is not None, f"never saw {marker!r}:\n{output}"
        return code, output


def edit_spec(app: Path, edits: Mapping[str, str]) -> Path:
    """Replace, in turn, each ``old`` text of ``app``'s shipit.yml by its ``new`` one (each must
    be there: a test editing a line the example no longer has fails loudly); returns ``app``."""
    spec = app / "shipit.yml"
    text = spec.read_text()
    for old, new in edits.items():
        assert old in text, old
        text = text.replace(old, new)
    spec.write_text(text)
    return app


def https_get_as(address: str, cafile: str, domain: str, path: str = "/health",
                 timeout: float = 5.0) -> tuple[int, dict[str, Any]]:
    """GET https://{domain}{path} from ``address`` (SNI and Host ``domain``), verified by ``cafile``."""
    if domain == DOMAIN:
        return https_get(address, cafile, path, timeout)
    context = ssl.create_default_context(cafile=cafile)
    sock = socket.create_connection((address, 443), timeout=timeout)
    conn = http.client.HTTPSConnection(domain, 443, timeout=timeout, context=context)
    conn.sock = context.wrap_socket(sock, server_hostname=domain)
    try:
        conn.request("GET", path, headers={"Host": domain, "Connection": "close"})
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    try:
        doc = json.loads(body)
    except ValueError:
        doc = {"raw": body[:200].decode(errors="replace")}
    return response.status, doc


def lock_free(env: Env) -> bool:
    return env.run_on("web1", f"test -e {ROOT}/.deploy-lock && echo held || echo free\n").strip() == "free"


def host_release(env: Env, host: str, domain: str = DOMAIN, tries: int = 6) -> str:
    """The one release ``host`` serves: every answer through Caddy (several requests, so both
    workers), the ``current`` symlink and the live slot agree — never a mix inside a host."""
    answers: set[str] = set()
    for _ in range(tries):
        status, doc = https_get_as(env.address(host), env.cafile(host), domain)
        assert status == 200, f"{host}: HTTP {status} {doc}"
        answers.add(str(doc["release"]))
    assert len(answers) == 1, f"{host} answers with several releases: {answers}"
    release = answers.pop()
    current = env.run_on(host, f"basename \"$(readlink {ROOT}/current)\"\n").strip()
    slot = env.run_on(host, f"basename \"$(readlink {ROOT}/slots/$(cat {ROOT}/.live-port))\"\n").strip()
    assert current == slot == release, f"{host}: Caddy serves {release}, current is {current}, live slot {slot}"
    return release


def assert_settled(env: Env, output: str, allowed: Mapping[str, set[str]] | set[str],
                   hosts: tuple[str, ...] = WEB) -> dict[str, str]:
    """After a failure: each host in ``hosts`` serves one release among ``allowed`` (per host or
    for all), the lock is free, the output has "HOST: serving RELEASE" for each host and it
    is the truth. Returns host -> release."""
    stands = {h: line.split("serving ", 1)[1].split()[0] for line in output.splitlines()
              for h in WEB if line.strip().startswith(f"{h}: serving ")}
    now = {h: host_release(env, h) for h in hosts}
    for h in hosts:
        ok = allowed[h] if isinstance(allowed, Mapping) else allowed
        assert now[h] in ok, f"{h} serves {now[h]}, expected one of {ok}"
        assert stands.get(h) == now[h], f"the output says {h} serves {stands.get(h)}, it serves {now[h]}:\n{output}"
    assert lock_free(env), "the deploy lock is still held"
    assert "Traceback" not in output, output
    return now


def machine(lab_api: Lab, host: str) -> Machine:
    """The lab's :class:`Machine` for ``host`` (to cut its power)."""
    return Machine(lab_api.net, HostSpec(host, "", ""), lab_api.dir, None)


def power_cut(lab_api: Lab, host: str) -> None:
    """SIGKILL the host's container (its PID 1 and nspawn): as a power cut, no shutdown."""
    m = machine(lab_api, host)
    pids = [p for p in [m.init_pid(), *m.pids()] if p]
    assert pids, f"{host} is not running"
    for pid in pids:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
