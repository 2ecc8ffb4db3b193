"""The ``postgresql`` part of the host fact: versions and paths from the host, never constants."""

from __future__ import annotations

from shipit.facts.host import parse, postgresql_fact


def test_bookworm_has_15_trixie_17() -> None:
    assert postgresql_fact(["15 main 5432 online"])["hba_file"] == "/etc/postgresql/15/main/pg_hba.conf"
    trixie = postgresql_fact(["17 main 5432 online"])
    assert (trixie["version"], trixie["conf_d"], trixie["service"]) == (
        "17", "/etc/postgresql/17/main/conf.d", "postgresql@17-main")


def test_the_cluster_on_the_default_port_wins_then_the_newest() -> None:
    # an upgrade in progress: the new cluster is created on 5433 until it is switched over
    assert postgresql_fact(["15 main 5432 online", "17 main 5433 down"])["version"] == "15"
    assert postgresql_fact(["15 old 5433 down", "17 main 5434 online"])["version"] == "17"
    assert len(postgresql_fact(["15 main 5432 online", "17 main 5433 down"])["clusters"]) == 2


def test_not_installed_and_garbage() -> None:
    empty = postgresql_fact([])
    assert empty["version"] == "" and empty["clusters"] == [] and empty["hba_file"] == ""
    assert postgresql_fact(["15 ma$in 5432 online", "x main 5432 online", "15 main"])["clusters"] == []


def test_parsed_from_the_host_command_output() -> None:
    facts = parse("os_id=debian\npg_cluster=15 main 5432 online\n")
    assert facts["postgresql"]["config_dir"] == "/etc/postgresql/15/main"
    assert parse("os_id=debian\n")["postgresql"]["version"] == ""
