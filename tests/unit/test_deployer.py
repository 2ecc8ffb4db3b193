"""The Deployer over a simulated fleet (stubbed layer): canary, restore, max-fail, lock,
--limit, rollback targets, one host's trouble, Ctrl-C. See tests/unit/fakefleet.py."""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from shipit.artifact import BuildError, Part
from shipit.deploy import Deployer, DeployFailed, DeployOutcome, load_target
from shipit.inventory import load_inventory
from shipit.layout import Layout
from shipit.platform import TargetPlatform
from tests.unit.fakefleet import FakeHost, fake_kinds, fake_modules, fake_pool

WEB = ("web1", "web2", "web3")


@dataclass(frozen=True)
class FakeArtifact:
    path: str
    sha256: str
    content_hash: str
    distribution: str | None = "example"
    size: int = 1024
    wheels: tuple[str, ...] = ("example-0.1.0-py3-none-any.whl", "six-1.16.0-py2.py3-none-any.whl")
    parts: tuple[Part, ...] = ()
    requirements: tuple[str, ...] = ("six==1.16.0", "uvicorn==0.32.0")


class Recorder:
    """A DeployReporter that keeps what it was told."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def play_start(self, play: Any, hosts: Any) -> None:
        self.lines.append(f"play {play.name} {','.join(hosts)}")

    def task_done(self, result: Any) -> None:
        self.lines.append(f"{result.status} {result.host} {result.task}")

    def host_unreachable(self, host: str, message: str) -> None:
        self.lines.append(f"unreachable {host}")

    def phase(self, name: str, detail: str = "") -> None:
        self.lines.append(f"phase {name} {detail}")

    def phase_done(self, name: str, seconds: float) -> None:
        pass

    def note(self, text: str) -> None:
        self.lines.append(f"note {text}")


class Fleet:
    def __init__(self, tmp: Path, migrate: bool = True, serial: str = "1", max_fail: int = 0) -> None:
        (tmp / "inv.yml").write_text(
            "hosts:\n" + "".join(f"  {h}: {{address: 127.0.0.{i + 1}}}\n" for i, h in enumerate(WEB))
            + "groups: {web: {hosts: [web1, web2, web3]}}\n")
        (tmp / "app").mkdir()
        (tmp / "app" / "shipit.yml").write_text(
            "name: example\nweb: {app: example_app.main:app, workers: 2}\ndomains: [example.test]\n"
            + ("migrate: alembic upgrade head\n" if migrate else "")
            + f"serial: {serial}\nmax_fail: {max_fail}\nkeep_releases: 3\n")
        self.tmp = tmp
        self.hosts = {h: FakeHost(h) for h in WEB}
        self.version = 0
        self.wheels: tuple[str, ...] | None = None  # what the fake build ships (None: FakeArtifact's)
        self.targets: list[TargetPlatform] = []  # what each build was asked to build for
        self.deps = b"deps v1" * 1000  # the dependency part's bytes (same until a test changes it)
        self.build_kw: dict[str, Any] = {}
        self.build_error = ""  # the fake build raises BuildError with it

    def deployer(self, limit: str | None = None, lock_wait: float = 0.0) -> tuple[Deployer, Recorder]:
        inv = load_inventory(self.tmp / "inv.yml")
        target = load_target("prod", inv, str(self.tmp / "app"), limit=limit)
        rec = Recorder()
        return Deployer(target, fake_pool(self.hosts), rec, forks=5, lock_wait=lock_wait,
                        build=self.build, modules=fake_modules(), kinds=fake_kinds(),
                        sleep=lambda s: None), rec

    def build(self, source: str, out: str, target: TargetPlatform, **kw: Any) -> FakeArtifact:
        self.targets.append(target)
        self.build_kw = kw
        if self.build_error:
            raise BuildError(self.build_error)
        sha = f"{self.version:064x}"
        parts = tuple(self._part(kind, data) for kind, data in
                      (("deps", self.deps), ("app", f"app v{self.version}".encode())))
        if self.wheels is None:
            return FakeArtifact(str(self.tmp / "artifact.tar.gz"), sha, sha[:12], parts=parts)
        return FakeArtifact(str(self.tmp / "artifact.tar.gz"), sha, sha[:12], wheels=self.wheels, parts=parts)

    def _part(self, kind: str, data: bytes) -> Part:
        digest = hashlib.sha256(data).hexdigest()
        path = self.tmp / "parts" / f"{digest}.gz"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
        return Part(kind, str(path), digest, len(data))

    def deploy(self, **kw: Any) -> DeployOutcome:
        deployer, _ = self.deployer(**kw)
        return deployer.deploy(str(self.tmp / "out"))

    def serving(self) -> dict[str, str | None]:
        return {h: f.current for h, f in self.hosts.items()}


@pytest.fixture
def fleet(tmp_path: Path) -> Fleet:
    return Fleet(tmp_path)


def test_first_deploy_switches_every_host_and_frees_the_lock(fleet: Fleet) -> None:
    outcome = fleet.deploy()
    assert outcome.ok and outcome.migrations == "ran"
    assert fleet.serving() == {h: outcome.release for h in WEB}
    assert all(o.result == "switched" for o in outcome.hosts.values())
    assert fleet.hosts["web1"].migrations == 1 and fleet.hosts["web2"].migrations == 0  # leader only
    assert all(f.lock is None for f in fleet.hosts.values())
    assert set(outcome.durations) >= {"build", "facts", "lock", "provision", "upload", "migrate", "switch"}


def test_redeploy_of_the_same_release_changes_nothing_but_still_migrates(fleet: Fleet) -> None:
    first = fleet.deploy()
    again = fleet.deploy()
    assert again.release == first.release and again.changed == 0
    assert all(o.result == "serving it" for o in again.hosts.values())
    assert fleet.hosts["web1"].migrations == 2  # the database decides, not a marker (#11 item 2)


def test_failing_canary_stops_the_roll_and_leaves_every_host_on_the_previous_release(fleet: Fleet) -> None:
    first = fleet.deploy()
    fleet.version = 1
    fleet.hosts["web1"].fail_switch = True
    with pytest.raises(DeployFailed) as info:
        fleet.deploy()
    assert "canary failed on web1" in info.value.message
    assert "web1: serving " + first.release in info.value.message
    assert fleet.serving() == {h: first.release for h in WEB}
    assert info.value.outcome is not None and info.value.outcome.hosts["web1"].result == "failed"
    assert info.value.outcome.hosts["web2"].result == "not switched"
    assert all(f.lock is None for f in fleet.hosts.values())


def test_a_failed_later_batch_is_restored_and_the_roll_stops(tmp_path: Path) -> None:
    fleet = Fleet(tmp_path, serial="2")
    first = fleet.deploy()
    fleet.version = 1
    fleet.hosts["web3"].fail_switch = True  # batches [web1, web2], [web3]
    with pytest.raises(DeployFailed) as info:
        fleet.deploy()
    assert "batch 2 failed on web3" in info.value.message
    second = info.value.outcome.release if info.value.outcome else ""
    assert fleet.serving() == {"web1": second, "web2": second, "web3": first.release}


def test_restore_puts_switched_hosts_of_the_failed_batch_back(tmp_path: Path) -> None:
    fleet = Fleet(tmp_path, serial="3")
    first = fleet.deploy()
    fleet.version = 1
    fleet.hosts["web2"].fail_switch = True  # one batch of 3: web1 and web3 switch, web2 fails
    with pytest.raises(DeployFailed):
        fleet.deploy()
    assert fleet.serving() == {h: first.release for h in WEB}


def test_max_fail_lets_the_roll_go_on(tmp_path: Path) -> None:
    fleet = Fleet(tmp_path, serial="3", max_fail=50)
    fleet.deploy()
    fleet.version = 1
    fleet.hosts["web2"].fail_switch = True  # 1 of 3 = 33% <= 50%
    deployer, _ = fleet.deployer()
    outcome = deployer.deploy(str(tmp_path / "out"))
    assert not outcome.ok and outcome.hosts["web2"].result == "failed"
    assert outcome.hosts["web1"].serving == outcome.release == outcome.hosts["web3"].serving


def test_a_held_lock_refuses_and_changes_nothing(fleet: Fleet) -> None:
    fleet.hosts["web1"].lock = "who=other@ci when=2026-12-01T09:00:00Z release=x"
    with pytest.raises(DeployFailed, match="lock is held .*other@ci.*shipit unlock prod"):
        fleet.deploy()
    assert fleet.serving() == {h: None for h in WEB}
    assert fleet.hosts["web1"].lock and fleet.hosts["web1"].lock.startswith("who=other@ci")


def test_limit_deploys_only_to_the_matching_hosts(fleet: Fleet) -> None:
    """Regression (#11 item 3): `deploy -l web2` deployed everywhere."""
    outcome = fleet.deploy(limit="web2")
    assert fleet.serving() == {"web1": None, "web2": outcome.release, "web3": None}
    assert set(outcome.hosts) == {"web2"}
    assert outcome.migrations.startswith("not run: the leader web1 is outside --limit")
    assert fleet.hosts["web1"].lock is None  # the lock was still taken (and freed) on the leader
    assert any("deploy_lock" in s or "__change deploy_lock" in s for s in fleet.hosts["web1"].scripts)


def test_a_migration_failure_records_the_release_failed_and_rollback_skips_it(fleet: Fleet) -> None:
    """Regression (#11 item 1): a release that never served must never be a rollback target."""
    r1 = fleet.deploy().release
    fleet.version = 1
    fleet.hosts["web1"].fail_migrate = True
    with pytest.raises(DeployFailed, match="migrations failed on the leader"):
        fleet.deploy()
    assert fleet.serving() == {h: r1 for h in WEB}
    assert all("\tfailed" in f.log[-1] for f in fleet.hosts.values())
    fleet.hosts["web1"].fail_migrate = False
    fleet.version = 2
    r3 = fleet.deploy().release
    assert fleet.serving() == {h: r3 for h in WEB}
    deployer, _ = fleet.deployer()
    back = deployer.rollback()
    assert back.release == r1 and fleet.serving() == {h: r1 for h in WEB}


def test_rollback_to_a_release_that_never_served_needs_force(fleet: Fleet) -> None:
    fleet.deploy()
    fleet.version = 1
    fleet.hosts["web1"].fail_migrate = True
    with pytest.raises(DeployFailed) as info:
        fleet.deploy()
    failed = info.value.outcome.release if info.value.outcome else ""
    deployer, _ = fleet.deployer()
    with pytest.raises(DeployFailed, match="never went live"):
        deployer.rollback(failed)
    assert deployer.rollback(failed, force=True).release == failed


def test_rollback_without_a_previous_release_says_so(fleet: Fleet) -> None:
    fleet.deploy()
    deployer, _ = fleet.deployer()
    with pytest.raises(DeployFailed, match="no release that served before"):
        deployer.rollback()


def test_truncated_facts_on_one_host_fail_that_host_only_and_nothing_changes(fleet: Fleet) -> None:
    """Regression (#11 item 5): output cut short raised ValueError for the whole fleet."""
    fleet.hosts["web2"].truncate_facts = True
    with pytest.raises(DeployFailed) as info:
        fleet.deploy()
    assert "web2" in info.value.message and "cut short" in info.value.message
    assert "nothing was changed" in info.value.message
    assert fleet.serving() == {h: None for h in WEB} and all(f.lock is None for f in fleet.hosts.values())


def test_an_unreachable_host_is_reported_not_raised(fleet: Fleet) -> None:
    fleet.hosts["web3"].unreachable = True
    with pytest.raises(DeployFailed) as info:
        fleet.deploy()
    assert info.value.outcome is not None
    assert info.value.outcome.hosts["web3"].result == "unreachable"


def test_ctrl_c_during_a_hanging_command_frees_the_lock_and_says_where_hosts_stand(fleet: Fleet) -> None:
    first = fleet.deploy()
    fleet.version = 1
    deployer, rec = fleet.deployer()
    fleet.hosts["web1"].hang = "__change release_command"  # the migration hangs on the leader
    fleet.hosts["web1"].hang_seconds = 300.0  # until the Ctrl-C cancels it (a bound, not a duration)
    timer = threading.Thread(target=lambda: fleet.hosts["web1"].hanging.wait(300) and _interrupt_main())
    timer.start()
    try:
        with pytest.raises(DeployFailed) as info:
            deployer.deploy(str(fleet.tmp / "out"))
    finally:
        timer.join()
        fleet.hosts["web1"].hang = ""
    assert info.value.exit_code == 130 and "interrupted (Ctrl-C)" in info.value.message
    assert fleet.serving() == {h: first.release for h in WEB}
    assert fleet.hosts["web1"].lock is None
    assert fleet.hosts["web1"].cancelled.is_set()  # the hanging command was cut off


def test_a_hanging_command_times_out_as_that_hosts_failure(fleet: Fleet) -> None:
    first = fleet.deploy()
    fleet.version = 1
    fleet.hosts["web1"].hang = "__change release_command"
    (fleet.tmp / "app" / "shipit.yml").write_text(
        (fleet.tmp / "app" / "shipit.yml").read_text() + "migrate_timeout: 1\n")
    deployer, _ = fleet.deployer()
    with pytest.raises(DeployFailed, match="(?s)migrations failed on the leader.*timeout"):
        deployer.deploy(str(fleet.tmp / "out"))
    assert fleet.serving() == {h: first.release for h in WEB}
    assert fleet.hosts["web1"].lock is None


def _interrupt_main() -> None:
    import _thread

    _thread.interrupt_main()


def test_a_port_another_app_uses_on_a_host_is_refused_before_anything_changes(fleet: Fleet) -> None:
    """#11 item 7: two apps defaulting to 8000/8001 on one host overwrote each other."""
    from shipit.errors import ValidationError

    original = fleet.hosts["web2"].fact

    def with_other_app(kind: str, arg: str) -> str:
        text = original(kind, arg)
        return text + "app_ports=blog 8001 8002\n" if kind == "release_state" else text

    fleet.hosts["web2"].fact = with_other_app  # type: ignore[method-assign]
    with pytest.raises(ValidationError, match="web2: port 8001 already belongs to the app 'blog'"):
        fleet.deploy()
    assert fleet.serving() == {h: None for h in WEB} and fleet.hosts["web1"].lock is None


def test_a_release_that_cannot_start_on_one_host_switches_no_host(fleet: Fleet) -> None:
    """#12: every host is prepared (new slot started, health-checked) before the first switch;
    a slot that fails to start anywhere stops the deploy with nothing switched."""
    first = fleet.deploy()
    fleet.version = 1
    fleet.hosts["web3"].fail_prepare = True
    with pytest.raises(DeployFailed, match="did not start on web3; no host was switched"):
        fleet.deploy()
    assert fleet.serving() == {h: first.release for h in WEB}
    # the slots prepared on web1 and web2 were stopped again: only the live slot runs
    assert all(f.active == {f.live_port} for f in fleet.hosts.values())
    assert fleet.hosts["web1"].lock is None


def test_the_roll_stopping_at_the_canary_stops_the_other_prepared_slots(fleet: Fleet) -> None:
    fleet.deploy()
    fleet.version = 1
    fleet.hosts["web1"].fail_switch = True
    with pytest.raises(DeployFailed):
        fleet.deploy()
    assert fleet.hosts["web2"].active == {fleet.hosts["web2"].live_port}
    assert fleet.hosts["web3"].active == {fleet.hosts["web3"].live_port}


def test_a_deploy_after_one_killed_mid_roll_stops_the_orphan_slots(fleet: Fleet) -> None:
    """#11 item 10: shipit SIGKILLed after preparing left the new release's slot running beside
    the live one on hosts it never switched; the next deploy stops them and says why."""
    first = fleet.deploy()
    for name in ("web2", "web3"):  # what the killed deploy left: a prepared slot of another release
        host = fleet.hosts[name]
        idle = 8001 if host.live_port == 8000 else 8000
        host.slots[idle], host.releases["20261201T000000Z-0123456789ab"] = "20261201T000000Z-0123456789ab", True
        host.active.add(idle)
    deployer, _ = fleet.deployer()
    again = deployer.deploy(str(fleet.tmp / "out"))
    assert again.ok and again.release == first.release
    assert all(f.active == {f.live_port} for f in fleet.hosts.values())
    stopped = [s for s in fleet.hosts["web2"].scripts if "left running by an interrupted deploy" in s]
    assert stopped and not [s for s in fleet.hosts["web1"].scripts if "interrupted deploy" in s]


def test_canary_bake_fails_a_canary_that_crashes_while_watched(tmp_path: Path) -> None:
    fleet = Fleet(tmp_path)
    first = fleet.deploy()
    spec = tmp_path / "app" / "shipit.yml"
    spec.write_text(spec.read_text() + "canary: {bake: 5}\n")
    fleet.version = 1
    restarts = {"n": 0}
    original = fleet.hosts["web1"].fact

    def status(kind: str, arg: str) -> str:
        if kind != "app_status":
            return original(kind, arg)
        restarts["n"] += 1  # each look sees one more restart: the canary crash-loops
        port = fleet.hosts["web1"].live_port
        return (f"app=example\ncurrent={fleet.hosts['web1'].current}\nlive_port={port}\n"
                f"show example-web@{port}.service ActiveState=active\n"
                f"show example-web@{port}.service NRestarts={restarts['n']}\n")

    fleet.hosts["web1"].fact = status  # type: ignore[method-assign]
    deployer, rec = fleet.deployer()
    slept: list[float] = []
    deployer._sleep = slept.append
    with pytest.raises(DeployFailed, match="canary failed on web1"):
        deployer.deploy(str(tmp_path / "out"))
    assert slept == [5.0]
    assert fleet.hosts["web2"].current == first.release and fleet.hosts["web3"].current == first.release


def test_the_artifact_is_built_for_the_hosts_platform_after_reading_them(fleet: Fleet) -> None:
    deployer, rec = fleet.deployer()
    deployer.deploy(str(fleet.tmp / "out"))
    # the fake hosts: bookworm (its python3 is 3.11), x86_64, glibc 2.36
    assert fleet.targets == [TargetPlatform("3.11", "x86_64", "2.36")]
    phases = [line.split()[1] for line in rec.lines if line.startswith("phase ")]
    assert phases.index("facts") < phases.index("build") < phases.index("lock")


def test_wheels_that_do_not_run_on_the_hosts_are_refused_before_the_lock(fleet: Fleet) -> None:
    fleet.wheels = ("example-0.1.0-py3-none-any.whl",
                    "pydantic_core-2.33.2-cp311-cp311-manylinux_2_17_aarch64.manylinux2014_aarch64.whl")
    deployer, rec = fleet.deployer()
    with pytest.raises(DeployFailed, match="(?s)would not run on the hosts.*nothing was changed.*pydantic"):
        deployer.deploy(str(fleet.tmp / "out"))
    assert not any(line.startswith("phase lock") for line in rec.lines)
    assert fleet.serving() == {h: None for h in WEB} and all(f.lock is None for f in fleet.hosts.values())


def test_hosts_of_different_platforms_are_refused_before_the_build(fleet: Fleet) -> None:
    real = fleet.hosts["web3"].fact

    def arm(kind: str, arg: str) -> str:
        return real(kind, arg).replace("machine=x86_64", "machine=aarch64")

    fleet.hosts["web3"].fact = arm  # type: ignore[method-assign]
    with pytest.raises(DeployFailed, match="hosts differ in platform.*nothing was changed"):
        fleet.deploy()
    assert fleet.targets == [] and all(f.lock is None for f in fleet.hosts.values())


def test_a_requirements_only_app_installs_no_app_wheel_and_has_its_release_dir_on_the_path(fleet: Fleet) -> None:
    deployer, _ = fleet.deployer()
    deployer._artifact_dir = str(fleet.tmp / "out")
    release = "20261201T100000Z-0123456789ab"
    source_tree = deployer._deploy_extra("a.tar.gz", [], "", 2, release)
    assert source_tree["app_packages"] == []
    assert f'PYTHONPATH="{Layout("example").release(release)}"\n' in source_tree["release_env"]
    wheel = deployer._deploy_extra("a.tar.gz", ["example"], "", 2, release)
    assert wheel["app_packages"] == ["example"] and "PYTHONPATH" not in wheel["release_env"]


# ---- content-addressed upload (#12 item 2) --------------------------------------------------
def test_a_code_change_uploads_only_the_app_part_and_counts_the_bytes(fleet: Fleet) -> None:
    first = fleet.deploy()
    deps = hashlib.sha256(fleet.deps).hexdigest()
    assert all(f.uploads[0] == deps and len(f.uploads) == 2 for f in fleet.hosts.values())
    assert first.uploaded == {h: len(fleet.deps) + len(b"app v0") for h in WEB}
    fleet.version = 1
    second = fleet.deploy()
    assert second.ok and second.release != first.release
    app = hashlib.sha256(b"app v1").hexdigest()
    assert all(f.uploads[2:] == [app] for f in fleet.hosts.values())   # the deps part stays
    assert second.uploaded == {h: len(b"app v1") for h in WEB}
    assert second.as_dict()["uploaded_bytes"] == {h: 6 for h in WEB}


def test_an_idempotent_redeploy_uploads_nothing(fleet: Fleet) -> None:
    fleet.deploy()
    again = fleet.deploy()
    assert again.changed == 0 and again.uploaded == {h: 0 for h in WEB}


def test_prune_keeps_the_parts_of_kept_releases_and_drops_the_others(fleet: Fleet) -> None:
    for v in range(5):              # keep_releases: 3
        fleet.version = v
        if v == 3:
            fleet.deps = b"deps v2" * 1000
        assert fleet.deploy().ok
    host = fleet.hosts["web1"]
    needed = {sha for r in host.releases for sha in host.uses[r]}
    assert len(host.releases) == 3 and set(host.parts) == needed
    assert hashlib.sha256(b"deps v1" * 1000).hexdigest() in host.parts   # the oldest kept uses it
    assert hashlib.sha256(b"app v0").hexdigest() not in host.parts
    assert fleet.deployer()[0].rollback().ok


def test_the_outcome_has_prepare_and_switch_apart(fleet: Fleet) -> None:
    outcome = fleet.deploy()
    assert {"build", "upload", "prepare", "switch"} <= set(outcome.durations)
    assert list(outcome.durations).index("prepare") < list(outcome.durations).index("switch")


# ---- build and release steps (issue 10 item 4) ------------------------------------------------
def _with_steps(fleet: Fleet, extra: str) -> None:
    spec = fleet.tmp / "app" / "shipit.yml"
    spec.write_text(spec.read_text() + extra)


def test_release_steps_run_once_on_the_leader_after_migrate(fleet: Fleet) -> None:
    _with_steps(fleet, "release: [python manage.py clearsessions, python manage.py warm_cache]\n")
    outcome = fleet.deploy()
    assert outcome.ok and fleet.serving() == {h: outcome.release for h in WEB}
    assert fleet.hosts["web1"].release_steps == ["python manage.py clearsessions", "python manage.py warm_cache"]
    assert fleet.hosts["web2"].release_steps == [] and fleet.hosts["web3"].release_steps == []
    assert fleet.hosts["web1"].migrations == 1


def test_a_failing_release_step_stops_the_deploy_before_any_switch(fleet: Fleet) -> None:
    r1 = fleet.deploy().release
    _with_steps(fleet, "release: [python manage.py warm_cache]\n")
    fleet.version = 1
    fleet.hosts["web1"].fail_release = True
    with pytest.raises(DeployFailed, match="a release step failed on the leader; no host was switched") as info:
        fleet.deploy()
    assert "the release step failed" in str(info.value)
    assert fleet.serving() == {h: r1 for h in WEB}
    assert all(not any(line.endswith("\tlive") and r1 not in line for line in f.log) for f in fleet.hosts.values())
    assert all("\tfailed" in f.log[-1] for f in fleet.hosts.values())  # recorded failed: never a rollback target
    assert all(f.lock is None for f in fleet.hosts.values())


def test_a_failing_build_step_stops_the_deploy_before_the_lock(fleet: Fleet) -> None:
    r1 = fleet.deploy().release
    _with_steps(fleet, "build: [python manage.py collectstatic --noinput]\n")
    fleet.version = 1
    fleet.build_error = "build step 1 (python manage.py collectstatic --noinput) failed with exit code 1:\nboom"
    scripts_before = {h: len(f.scripts) for h, f in fleet.hosts.items()}
    with pytest.raises(DeployFailed, match="(?s)building the artifact failed; nothing was changed.*collectstatic"):
        fleet.deploy()
    assert fleet.build_kw["build"] == ("python manage.py collectstatic --noinput",)
    assert fleet.serving() == {h: r1 for h in WEB}
    # only the read-only fact round trip reached the hosts: no lock, no upload
    assert all(f.lock is None for f in fleet.hosts.values())
    assert all(not any("__change" in s for s in f.scripts[scripts_before[h]:]) for h, f in fleet.hosts.items())


def test_a_wsgi_app_without_gunicorn_is_refused_before_the_lock(fleet: Fleet) -> None:
    spec = fleet.tmp / "app" / "shipit.yml"
    spec.write_text(spec.read_text().replace("web: {app: example_app.main:app, workers: 2}",
                                             "web: {wsgi: example_app.wsgi:application, workers: 2}"))
    with pytest.raises(DeployFailed, match="web.server gunicorn needs gunicorn among the app's dependencies"):
        fleet.deploy()
    assert all(f.current is None and f.lock is None for f in fleet.hosts.values())
