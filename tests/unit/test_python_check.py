"""The app's Python against each host's (#10 item 6): pure choice from host facts, then the
Deployer and the CLI over the simulated fleet, where a mismatch is exit 2 before the lock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from shipit import cli, deploy
from shipit.distro import PythonNeed, available_pythons, default_python, describe, python_for_hosts, python_need, xy
from shipit.errors import ValidationError
from shipit.facts.host import parse
from tests.unit.fakefleet import fake_pool
from tests.unit.test_deployer import WEB, Fleet

REC = Path(__file__).parent / "recorded"
TRIXIE_TEXT = (REC / "host_trixie_fresh.txt").read_text()  # a fresh lab host, before provisioning
TRIXIE = parse(TRIXIE_TEXT)
BOOKWORM = {"os_id": "debian", "os_version": "12", "codename": "bookworm", "pythons": ["3.11"],
            "apt_pythons": ["3.11"], "python3_candidate": "3.11.2-1+b1"}


def test_trixie_facts_recorded_on_a_fresh_lab_host() -> None:
    assert TRIXIE["pythons"] == [] and TRIXIE["apt_pythons"] == ["3.13"]
    assert TRIXIE["python3_candidate"] == "3.13.5-1" and TRIXIE["caddy_candidate"].startswith("2.6.2")
    assert describe(TRIXIE) == "Debian 13 (trixie)"
    assert default_python(TRIXIE) == "3.13"
    assert available_pythons(TRIXIE) == (["3.13"], "installed or in its apt sources")


def test_the_table_stands_in_only_without_facts() -> None:
    bare = {"codename": "noble"}
    assert available_pythons(bare) == (["3.12"], "what Ubuntu 24.04 (noble) ships (its apt lists were never read)")
    assert default_python(bare) == "3.12" and default_python({"codename": "sid"}) is None
    assert available_pythons({"codename": "sid"})[0] == []
    # facts win over the table: a bookworm host with deadsnakes-style extra Pythons
    assert available_pythons(dict(BOOKWORM, apt_pythons=["3.11", "3.12"]))[0] == ["3.11", "3.12"]
    assert xy("1:3.11.2-1+b1") == "3.11" and xy("(none)") is None


def test_need_from_requires_python_with_its_line(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "a"\nversion = "1"\nrequires-python = ">=3.12"\n')
    need = python_need(None, "shipit.yml", 0, tmp_path)
    assert need == PythonNeed(specifier=">=3.12", file=str(tmp_path / "pyproject.toml"), line=4,
                              key="requires-python")
    assert not need.allows("3.11") and need.allows("3.12") and need.allows("3.13")
    assert PythonNeed(specifier=">=3.11.4").allows("3.11")  # the host's patch level is unknown
    assert not PythonNeed(specifier="<3.13").allows("3.13") and PythonNeed(specifier="~=3.11").allows("3.13")
    assert python_need(None, "shipit.yml", 0, tmp_path / "none") == PythonNeed()  # no pyproject: any


def test_spec_python_wins_but_must_satisfy_requires_python(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "a"\nrequires-python = ">=3.12"\n')
    assert python_need("3.13", "shipit.yml", 3, tmp_path).exact == "3.13"
    with pytest.raises(ValidationError) as info:
        python_need("3.11", "shipit.yml", 3, tmp_path)
    assert info.value.exit_code == 2
    assert str(info.value.problems[0]).startswith("shipit.yml:3: python: Python 3.11 does not satisfy")
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "a"\nrequires-python = "three"\n')
    with pytest.raises(ValidationError, match=r"pyproject.toml:3: requires-python: 'three': expected a PEP 440"):
        python_need(None, "shipit.yml", 0, tmp_path)


def test_one_python_for_the_fleet() -> None:
    assert python_for_hosts({"web1": BOOKWORM, "web2": BOOKWORM}, PythonNeed()) == "3.11"
    assert python_for_hosts({"web1": TRIXIE}, PythonNeed(specifier=">=3.11")) == "3.13"
    # the hosts' default does not fit: the newest they all have that does
    extra = dict(BOOKWORM, apt_pythons=["3.11", "3.12"])
    assert python_for_hosts({"web1": extra}, PythonNeed(specifier=">=3.12")) == "3.12"
    # bookworm and trixie each fit `>=3.11` but share no Python: one artifact cannot serve both
    with pytest.raises(ValidationError, match="share no Python"):
        python_for_hosts({"web1": BOOKWORM, "web2": TRIXIE}, PythonNeed(specifier=">=3.11"))


def test_a_mismatch_names_host_release_python_and_need() -> None:
    need = PythonNeed(specifier="<3.13", file="app/pyproject.toml", line=9, key="requires-python")
    with pytest.raises(ValidationError) as info:
        python_for_hosts({"web1": BOOKWORM, "web2": TRIXIE}, need)
    assert [str(p) for p in info.value.problems] == [
        "app/pyproject.toml:9: requires-python: web2 runs Debian 13 (trixie) with Python 3.13 "
        "(installed or in its apt sources); the app needs Python <3.13"]


# ---- over the simulated fleet ------------------------------------------------------------------

def on_trixie(fleet: Fleet, *hosts: str) -> None:
    for h in hosts:
        fleet.hosts[h].host_facts = TRIXIE_TEXT.replace("hostname=web1", f"hostname={h}")


def pyproject(fleet: Fleet, requires: str) -> None:
    (fleet.tmp / "app" / "pyproject.toml").write_text(
        f'[project]\nname = "example"\nversion = "0.1.0"\nrequires-python = "{requires}"\n')


def test_deployer_builds_for_the_trixie_hosts_python(tmp_path: Path) -> None:
    fleet = Fleet(tmp_path)
    on_trixie(fleet, *WEB)
    pyproject(fleet, ">=3.11")
    outcome = fleet.deploy()
    assert outcome.ok and [t.python for t in fleet.targets] == ["3.13"]
    assert {t.glibc for t in fleet.targets} == {"2.41"}


def test_deployer_refuses_a_python_mismatch_before_the_lock(tmp_path: Path) -> None:
    fleet = Fleet(tmp_path)
    on_trixie(fleet, "web2")
    pyproject(fleet, ">=3.12")
    deployer, _ = fleet.deployer()
    with pytest.raises(ValidationError) as info:
        deployer.deploy(str(tmp_path / "out"))
    assert info.value.exit_code == 2
    problems = [str(p) for p in info.value.problems]
    assert len(problems) == 2 and "web1 runs Debian 12 (bookworm) with Python 3.11" in problems[0]
    assert "web3 runs Debian 12 (bookworm)" in problems[1] and "the app needs Python >=3.12" in problems[0]
    assert fleet.targets == []  # nothing built
    assert all(not any("__change" in s for s in f.scripts) for f in fleet.hosts.values())  # no lock, no change


@pytest.fixture
def cli_fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Fleet]:
    from tests.unit.fakefleet import fake_kinds, fake_modules

    fleet = Fleet(tmp_path)
    monkeypatch.setattr(cli, "ssh_pool", lambda inv, accept=False: fake_pool(fleet.hosts))
    monkeypatch.setattr(deploy, "build_artifact", fleet.build)
    monkeypatch.setattr(deploy, "builtin_modules", fake_modules)
    monkeypatch.setattr(deploy, "fact_kinds", fake_kinds)
    monkeypatch.chdir(tmp_path)
    yield fleet


def test_cli_exit_2_names_the_host_for_spec_python(cli_fleet: Fleet) -> None:
    spec = cli_fleet.tmp / "app" / "shipit.yml"
    spec.write_text(spec.read_text() + 'python: "3.11"\n')
    on_trixie(cli_fleet, "web3")
    result = CliRunner().invoke(cli.main, ["deploy", "prod", "-i", str(cli_fleet.tmp / "inv.yml"),
                                           "--app", str(cli_fleet.tmp / "app")], catch_exceptions=False)
    assert result.exit_code == 2, result.output
    line = len(spec.read_text().splitlines())
    assert (f"shipit.yml:{line}: python: web3 runs Debian 13 (trixie) with Python 3.13 "
            "(installed or in its apt sources); the app needs Python 3.11") in result.stderr
    assert "Traceback" not in result.stderr
    assert all(f.lock is None and f.current is None for f in cli_fleet.hosts.values())


def test_caddy_from_the_hosts_apt_sources() -> None:
    from shipit.distro import caddy_problems

    assert TRIXIE["apt_lists"] is True and caddy_problems({"web1": TRIXIE}) == []
    jammy = {"os_id": "ubuntu", "os_version": "22.04", "codename": "jammy", "apt_lists": True,
             "caddy_candidate": "", "caddy_installed": False}
    assert caddy_problems({"web1": jammy}) == [
        "web1 (Ubuntu 22.04 (jammy)): its apt sources have no caddy package and none is "
        "installed; add Caddy's apt repository on that host (see caddyserver.com/docs/install) "
        "or install caddy, then deploy again"]
    assert caddy_problems({"web1": dict(jammy, caddy_installed=True)}) == []
    assert caddy_problems({"web1": dict(jammy, apt_lists=False)}) == []  # lists never read: provision updates them


def test_deployer_refuses_hosts_without_caddy_before_the_lock(tmp_path: Path) -> None:
    from shipit.deploy import DeployFailed

    fleet = Fleet(tmp_path)
    on_trixie(fleet, *WEB)
    fleet.hosts["web2"].host_facts = TRIXIE_TEXT.replace("caddy_candidate=", "was_caddy=")
    deployer, _ = fleet.deployer()
    with pytest.raises(DeployFailed, match="web2 .Debian 13 .trixie..: its apt sources have no caddy"):
        deployer.deploy(str(tmp_path / "out"))
    assert fleet.targets == [] and all(f.lock is None for f in fleet.hosts.values())
