"""The ``app_status`` fact parser, on output recorded from lab hosts after a deploy of the
example app (2 uvicorn workers + one heartbeat process; the lab's containers have cgroup v1
controllers read-only, so CPU and memory come from /proc), and the status summary/table."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from shipit.facts.registry import fact_kinds
from shipit.facts.status import command, parse
from shipit.status import status_table, summarize

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
    console.print(status_table({"web2": s, "web9": {"reachable": False, "error": "web9: timed out"}}))
    text = console.export_text()
    assert "web@8000 (live): active/running restarts 1" in text
    assert "no: web9: timed out" in text
