"""The ``app_status`` fact parser, on output recorded from lab hosts after a deploy of the
example app (2 uvicorn workers + one heartbeat process; the lab's containers have cgroup v1
controllers read-only, so CPU and memory come from /proc), and the status summary/table."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from rich.console import Console

from shipit.facts.registry import fact_kinds
from shipit.facts.status import PROBE_SECONDS, command, parse, parse_probe, probe_command, web_probe
from shipit.status import (
    health_target,
    host_state,
    short_release,
    status_detail,
    status_lines,
    summarize,
    tls_left,
)

REC = Path(__file__).parent / "recorded"
WEB, BEAT = "example-web@8000.service", "example-heartbeat@1.service"
HOST = {"cpus": 2, "mem_total": 25_000_000_000, "mem_available": 22_000_000_000, "load": [0.5, 0.4, 0.3]}


def test_idle_host() -> None:
    fact = parse((REC / "status_web1_idle.txt").read_text())
    assert fact["current"] == "20261122T172039Z-dedc32c2fd1f" and fact["live_port"] == 8000
    assert set(fact["units"]) == {WEB, BEAT}
    web = fact["units"][WEB]
    assert web == {"kind": "web", "name": "web@8000", "instance": "8000", "active_state": "active", "sub_state": "running",
                   "restarts": 0, "main_pid": 1523, "memory": 190060 * 1024, "cpu_percent": 0.0,
                   "workers": 2}  # 3 children: 2 spawn workers + the resource tracker (not counted)
    beat = fact["units"][BEAT]
    assert beat["kind"] == "process" and beat["workers"] is None and beat["memory"] == 55432 * 1024


def test_restarted_master_under_load() -> None:
    fact = parse((REC / "status_web2_restarted_loaded.txt").read_text())
    web = fact["units"][WEB]
    assert web["restarts"] == 1 and web["main_pid"] == 1745 and web["workers"] == 2
    # ticks 0.5 s apart at CLK_TCK=100 while two local clients hammered /health
    assert web["cpu_percent"] is not None and web["cpu_percent"] > 50


def test_cgroup_v2_accounting_wins_over_proc() -> None:
    out = ("current=r1\nlive_port=8001\nclk_tck=100\n"
           "cpu0 x-web@8001.service 1000000000 u100\n"
           "cpu1 x-web@8001.service 1500000000 u250100\n"
           "show x-web@8001.service MainPID=0\nshow x-web@8001.service MemoryCurrent=4096\n"
           "mem x-web@8001.service 8192\n"
           "show x-web@8001.service ActiveState=failed\nshow x-web@8001.service NRestarts=5\n")
    unit = parse(out)["units"]["x-web@8001.service"]
    assert unit["cpu_percent"] == 50.0 and unit["memory"] == 8192
    assert unit["active_state"] == "failed" and unit["restarts"] == 5 and unit["workers"] is None


def test_empty_and_garbage() -> None:
    assert parse("") == {"app": "", "current": None, "live_port": None, "units": {}}
    fact = parse("current=\nlive_port=x\nnoise\ncpu0 notaunit 1 u1\n")
    assert fact == {"app": "", "current": None, "live_port": None, "units": {}}
    unit = parse("cpu0 a-web@1.service 5 -\ncpu1 a-web@1.service 9 -\n"
                 "show a-web@1.service MemoryCurrent=[not set]\n")["units"]["a-web@1.service"]
    assert unit["cpu_percent"] is None and unit["memory"] is None


def test_command_is_registered_and_derives_paths_from_the_layout() -> None:
    assert fact_kinds()["app_status"].parse is parse
    script = command("fsft-backend")
    assert "name=fsft-backend" in script and "readlink /srv/fsft-backend/current" in script


def test_app_names_with_dashes_keep_their_whole_name() -> None:
    """Regression (#11 item 8): ``fsft-backend`` showed as ``backend-web@8000``."""
    out = ("app=fsft-backend\ncurrent=r1\nlive_port=8000\nclk_tck=100\n"
           "show fsft-backend-web@8000.service ActiveState=active\n"
           "show fsft-backend-celery-beat@1.service ActiveState=active\n")
    units = parse(out)["units"]
    assert units["fsft-backend-web@8000.service"]["kind"] == "web"
    assert units["fsft-backend-web@8000.service"]["name"] == "web@8000"
    assert units["fsft-backend-celery-beat@1.service"]["name"] == "celery-beat@1"
    assert units["fsft-backend-celery-beat@1.service"]["kind"] == "process"


def test_summary_and_table() -> None:
    s = summarize(parse((REC / "status_web2_restarted_loaded.txt").read_text()), HOST)
    assert s["web_unit"] == WEB and s["web_active"] and s["workers"] == 2 and s["restarts"] == 1
    assert s["memory"] == s["units"][WEB]["memory"] + s["units"][BEAT]["memory"]
    assert s["host"]["mem_available"] == 22_000_000_000
    console = Console(width=250, record=True)
    console.print(status_detail({"web2": s, "web9": {"reachable": False, "error": "web9: timed out"}}))
    text = console.export_text()
    assert "web@8000 (live): active/running restarts 1" in text
    assert "web9  unreachable" in text and "web9: timed out" in text


# ---- the web probe (health through Caddy, TLS expiry) and the 80-column views ---------------
PROBE_OK = ("now=1796230958\n"  # curl 7.88 -v on Debian 12, against a certificate valid 3 days
            "expire=Dec  5 17:02:12 2026 GMT\n"
            "probe=200 0.029329\n")
PROBE_REFUSED = ("now=1796230958\n"
                 "error=Failed to connect to x.test port 443 after 0 ms: Couldn't connect to server\n"
                 "probe=000 0.000393\n")


def test_probe_parses_code_latency_and_days_left_by_the_hosts_clock() -> None:
    assert parse_probe(PROBE_OK) == {"code": 200, "ms": 29.3, "tls_expires": 1796490132,
                                     "tls_days": 3.0, "error": None}


def test_probe_without_an_answer_keeps_curls_reason() -> None:
    probe = parse_probe(PROBE_REFUSED)
    assert probe["code"] is None and probe["ms"] is None and probe["tls_days"] is None
    assert probe["error"].startswith("Failed to connect")


def test_probe_garbage_and_missing_pieces() -> None:
    empty = {"code": None, "ms": None, "tls_expires": None, "tls_days": None, "error": None}
    assert parse_probe("") == empty
    assert parse_probe("noise\nprobe=abc\nexpire=not a date\nnow=x\n") == empty
    # an expiry without the host's clock: the date, no days
    half = parse_probe("expire=Dec  5 17:02:12 2026 GMT\nprobe=503 0.5\n")
    assert half["tls_expires"] == 1796490132 and half["tls_days"] is None
    assert half["code"] == 503 and half["ms"] == 500.0
    assert parse_probe("now=1796590132\nexpire=Dec  5 17:02:12 2026 GMT\n")["tls_days"] == -1.2


def test_probe_command_is_bounded_quoted_and_never_exits_the_gather() -> None:
    arg = web_probe("x.test", "/health?full=1&x='y'").arg
    script = probe_command(arg)
    assert f"--max-time {PROBE_SECONDS}" in script and "--connect-timeout" in script
    assert "--resolve x.test:443:127.0.0.1" in script
    assert "'https://x.test/health?full=1&x='\"'\"'y'\"'\"''" in script  # one shell word
    assert "exit" not in script  # the facts are one script: an exit would end the others
    assert fact_kinds()["web_probe"].parse is parse_probe


def test_probe_command_runs_here_against_nothing_and_says_why() -> None:
    """The real script under sh on this machine: nothing listens on 443 for x.invalid."""
    out = subprocess.run(["sh", "-c", "export LC_ALL=C\n" + probe_command(web_probe("x.invalid", "/health").arg)],
                         capture_output=True, text=True, timeout=30, check=True).stdout
    probe = parse_probe(out)
    assert probe["code"] is None and probe["error"], out


def _statuses() -> dict[str, dict[str, Any]]:
    up = summarize(parse((REC / "status_web2_restarted_loaded.txt").read_text()), HOST, parse_probe(PROBE_OK))
    sick = summarize(parse((REC / "status_web1_idle.txt").read_text()), {**HOST, "load": [12.25, 1.0, 1.0]},
                     parse_probe(PROBE_REFUSED))
    sick["memory"] = 1234 * 2**20
    return {"web2": up, "web-frontend-production-long-01": sick,
            "web9": {"reachable": False, "error": "web9: cannot connect: connection refused (after 3 tries, "
                                                  "giving up on this host for this run)"}}


def _render(renderable: Any) -> list[str]:
    console = Console(width=80, record=True, color_system=None)
    console.print(renderable)
    return console.export_text().splitlines()


def test_status_lines_fit_80_columns_one_line_per_host() -> None:
    lines = _render(status_lines(_statuses()))
    assert all(len(line) <= 80 for line in lines), "\n".join(lines)
    assert lines[0].split() == ["host", "release", "state", "health", "wk", "cpu", "mem", "load", "tls"]
    web2 = next(line for line in lines if line.startswith("web2 "))
    assert web2.split() == ["web2", "dedc32c2", "up", "200", "29ms", "2", "102%", "240M", "0.50", "3d"]
    long = [line for line in lines if line.startswith("web-frontend")]
    assert len(long) == 1 and long[0].split()[1:] == ["dedc32c2", "sick", "no", "answer", "2", "0%", "1.2G",
                                                      "12.25", "-"]
    web9 = [line for line in lines if line.startswith("web9")]
    assert web9[0].split() == ["web9", "-", "unreachable", "-", "-", "-", "-", "-", "-"]
    assert web9[1].startswith("web9: cannot connect: connection refused")  # why, once, no "web9: web9:"
    assert len(lines) == 2 + 3 + 2  # header, rule, a line per host, the reason wrapped once


def test_status_detail_shows_everything_within_80_columns() -> None:
    lines = _render(status_detail(_statuses()))
    text = "\n".join(lines)
    assert all(len(line) <= 80 for line in lines), text
    assert "release   20261122T172039Z-dedc32c2fd1f (port 8000)" in text
    assert "health    HTTP 200 in 29.3 ms" in text
    assert "tls       expires 2026-12-05 17:02 UTC (3d left)" in text
    assert "web@8000 (live): active/running restarts 1" in text
    assert "no answer: Failed to connect" in text and "unknown (no certificate seen)" in text
    assert "web9  unreachable" in text and "connection refused" in text


def test_states_and_short_forms() -> None:
    s = _statuses()
    assert [host_state(x) for x in s.values()] == ["up", "sick", "unreachable"]
    assert host_state({**s["web2"], "probe": None}) == "up"  # no domain: nothing asked
    assert host_state({**s["web2"], "web_active": False}) == "down"
    assert host_state({**s["web2"], "current": None}) == "empty"
    failed = {**s["web2"], "units": {WEB: {**s["web2"]["units"][WEB], "active_state": "failed"}}}
    assert host_state(failed) == "failed"
    assert short_release("20261122T172039Z-dedc32c2fd1f") == "dedc32c2"
    assert short_release("my-release") == "my-release" and short_release(None) == "-"
    assert [tls_left(d) for d in (89.6, 2.0, 0.5, -0.1, None)] == ["90d", "2d", "12h", "exp", "-"]


def test_health_target_follows_the_switch() -> None:
    assert health_target(("a.test", "b.test"), "/health") == ("a.test", "/health")
    assert health_target(("*.a.test",), "/h") == ("health.a.test", "/h")
    assert health_target(("*.a.test",), "/h", "www.a.test") == ("www.a.test", "/h")
    assert health_target((), "/h") is None
