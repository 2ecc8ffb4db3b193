"""Deploy hooks (.shipit/hooks) over the simulated fleet: a failing pre-deploy stops the deploy
with no host touched and the lock free; the after-the-fact hooks get the result; misnamed or
non-executable hooks are bad input (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

from shipit.hooks import hook_env
from tests.unit.test_cli_deploy import fleet, shipit  # noqa: F401 - the fixture
from tests.unit.test_deployer import WEB, Fleet


def hook(fl: Fleet, name: str, body: str, mode: int = 0o755) -> Path:
    folder = fl.tmp / "app" / ".shipit" / "hooks"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(mode)
    return path


def recorded(fl: Fleet, name: str) -> dict[str, str]:
    lines = (fl.tmp / f"{name}.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line.startswith("SHIPIT_"))


def record(fl: Fleet, name: str) -> str:
    return f"env > {fl.tmp / (name + '.env')}\n"


def test_hook_env_is_the_documented_variables() -> None:
    assert hook_env("pre-deploy", "prod", "example", "deploy", "r1", ["web1", "web2"], "me@ci") == {
        "SHIPIT_HOOK": "pre-deploy", "SHIPIT_ENV": "prod", "SHIPIT_APP": "example", "SHIPIT_ACTION": "deploy",
        "SHIPIT_RELEASE": "r1", "SHIPIT_HOSTS": "web1,web2", "SHIPIT_USER": "me@ci"}
    after = hook_env("post-deploy", "prod", "example", "deploy", "r1", ["web1"], "me@ci", "ok", 12.34)
    assert after["SHIPIT_RESULT"] == "ok" and after["SHIPIT_DURATION"] == "12.3" and after["SHIPIT_ERROR"] == ""


def test_a_failing_pre_deploy_hook_stops_before_the_lock_with_no_host_touched(fleet: Fleet) -> None:  # noqa: F811
    hook(fleet, "pre-deploy", record(fleet, "pre") + "echo 'CI is red' >&2\nexit 1\n")
    code, out, err = shipit(fleet, "deploy", "prod", "--json")
    assert code == 1
    assert "the pre-deploy hook" in err and "exited 1" in err and "nothing was changed" in err
    assert "CI is red" in err and json.loads(out)["error"].startswith("the pre-deploy hook")
    env = recorded(fleet, "pre")
    assert env["SHIPIT_ENV"] == "prod" and env["SHIPIT_HOSTS"] == ",".join(WEB) and env["SHIPIT_RELEASE"]
    assert fleet.serving() == {h: None for h in WEB}
    assert all(f.lock is None and not f.releases for f in fleet.hosts.values())
    assert not any("__change" in s for f in fleet.hosts.values() for s in f.scripts)  # facts only


def test_a_failing_pre_build_hook_stops_before_the_build(fleet: Fleet) -> None:  # noqa: F811
    hook(fleet, "pre-build", "exit 3\n")
    code, _, err = shipit(fleet, "deploy", "prod")
    assert code == 1 and "the pre-build hook" in err and "exited 3" in err
    assert fleet.targets == []  # nothing was built


def test_post_deploy_and_deploy_failed_get_the_result(fleet: Fleet) -> None:  # noqa: F811
    hook(fleet, "post-deploy", record(fleet, "post"))
    hook(fleet, "deploy-failed", record(fleet, "failed"))
    code, out, _ = shipit(fleet, "deploy", "prod", "--json")
    assert code == 0
    post = recorded(fleet, "post")
    assert post["SHIPIT_RESULT"] == "ok" and post["SHIPIT_RELEASE"] == json.loads(out)["release"]
    assert float(post["SHIPIT_DURATION"]) >= 0 and not (fleet.tmp / "failed.env").exists()
    fleet.version = 1
    fleet.hosts["web1"].fail_switch = True
    code, _, _ = shipit(fleet, "deploy", "prod")
    assert code == 1
    failed = recorded(fleet, "failed")
    assert failed["SHIPIT_RESULT"] == "failed" and "canary failed on web1" in failed["SHIPIT_ERROR"]


def test_a_failing_post_deploy_hook_is_a_warning(fleet: Fleet) -> None:  # noqa: F811
    hook(fleet, "post-deploy", "exit 4\n")
    code, _, err = shipit(fleet, "deploy", "prod", "--json")
    assert code == 0 and "warning: the post-deploy hook" in err and "exited 4" in err


def test_post_rollback_runs_after_a_rollback(fleet: Fleet) -> None:  # noqa: F811
    shipit(fleet, "deploy", "prod")
    fleet.version = 1
    shipit(fleet, "deploy", "prod")
    hook(fleet, "post-rollback", record(fleet, "rollback"))
    code, _, _ = shipit(fleet, "rollback", "prod")
    assert code == 0 and recorded(fleet, "rollback")["SHIPIT_ACTION"] == "rollback"


def test_misnamed_and_non_executable_hooks_are_bad_input(fleet: Fleet) -> None:  # noqa: F811
    path = hook(fleet, "pre_deploy", "exit 0\n")
    code, _, err = shipit(fleet, "deploy", "prod")
    assert code == 2 and "did you mean 'pre-deploy'?" in err and fleet.hosts["web1"].scripts == []
    path.unlink()
    hook(fleet, "post-deploy", "exit 0\n", mode=0o644)
    code, _, err = shipit(fleet, "deploy", "prod")
    assert code == 2 and "not executable" in err and fleet.hosts["web1"].scripts == []
