"""Batched fact commands: one process for many args, cut back per arg.

The ``batch_*.txt`` outputs were recorded on a Debian 12 lab host (the anchors workload
converged: /srv/app, /srv/app/config.ini, demo.service, caddy), with the commands the kinds
build for the args below; ``tests/e2e/test_engine.py`` checks on a live host that batched and
one-by-one gathering agree.
"""

from __future__ import annotations

from pathlib import Path

from shipit.facts import FactQuery, build_gather_script, split_gather_output
from shipit.facts.files import parse_file, split_file_batch
from shipit.facts.packages import parse_apt_policy, parse_deb, split_apt_policy_batch, split_deb_batch
from shipit.facts.registry import fact_kinds
from shipit.facts.systemd import parse_unit, split_unit_batch

REC = Path(__file__).parent / "recorded"


def test_file_batch_splits_per_path() -> None:
    paths = ["/srv/app", "/srv/app/config.ini", "/nope", "/tmp/a b  c",
             "/etc/systemd/system/demo.service", "/dev/null", "/bin"]
    facts = dict(zip(paths, map(parse_file, split_file_batch((REC / "batch_file.txt").read_text(), paths)), strict=True))
    assert facts["/srv/app"] == {"exists": True, "type": "directory", "mode": "0755", "owner": "app",
                                 "group": "app", "size": 4096, "sha256": None}
    assert facts["/srv/app/config.ini"]["sha256"] == \
        "b256abed458425f86d673e6f55d15129f1ff9b6eea36f27d8990a73e0ba6ff23"
    assert facts["/srv/app/config.ini"]["mode"] == "0640"
    assert facts["/etc/systemd/system/demo.service"]["sha256"].startswith("7225516c")
    assert facts["/nope"]["exists"] is False
    assert facts["/tmp/a b  c"]["type"] == "directory"            # spaces in a path
    assert facts["/dev/null"]["type"] == "other" and facts["/dev/null"]["sha256"] is None
    assert facts["/bin"]["type"] == "link" and facts["/bin"]["sha256"] is None


def test_deb_batch_matches_plain_and_arch_qualified_names() -> None:
    names = ["python3", "caddy", "no-such-pkg-x", "libc6:amd64", "libc6:i386"]
    facts = dict(zip(names, map(parse_deb, split_deb_batch((REC / "batch_deb.txt").read_text(), names)), strict=True))
    assert facts["python3"] == {"installed": True, "version": "3.11.2-1+b1"}
    assert facts["caddy"] == {"installed": True, "version": "2.6.2-5"}
    assert facts["libc6:amd64"]["installed"] is True
    assert facts["libc6:i386"] == facts["no-such-pkg-x"] == {"installed": False, "version": None}


def test_held_package_counts_as_installed() -> None:
    assert parse_deb("hi |1.2-3\n") == {"installed": True, "version": "1.2-3"}
    assert parse_deb("rc |1.2-3\n")["installed"] is False


def test_apt_policy_batch_splits_blocks() -> None:
    names = ["python3", "no-such-pkg-x", "caddy", "libc6:amd64", "libc6:i386"]
    text = (REC / "batch_apt_policy.txt").read_text()
    facts = dict(zip(names, map(parse_apt_policy, split_apt_policy_batch(text, names)), strict=True))
    assert facts["python3"] == {"installed": "3.11.2-1+b1", "candidate": "3.11.2-1+b1"}
    assert facts["caddy"]["candidate"] == "2.6.2-5"
    assert facts["libc6:amd64"]["candidate"] == "2.36-9+deb12u14"   # apt prints it as "libc6:"
    assert facts["libc6:i386"] == facts["no-such-pkg-x"] == {"installed": None, "candidate": None}


def test_apt_policy_foreign_only_package_matches_its_plain_name() -> None:
    text = "wine32:i386:\n  Installed: (none)\n  Candidate: 8.0~repack-4\n"
    assert split_apt_policy_batch(text, ["wine32", "curl"]) == [
        "  Installed: (none)\n  Candidate: 8.0~repack-4\n", ""]


def test_unit_batch_pairs_blocks_in_order() -> None:
    names = ["caddy.service", "nosuch.service", "demo.service"]
    units = [parse_unit(t) for t in split_unit_batch((REC / "batch_unit.txt").read_text(), names)]
    assert [u["load_state"] for u in units] == ["loaded", "not-found", "loaded"]
    assert units[0]["fragment_path"] == "/lib/systemd/system/caddy.service"
    assert units[2]["main_pid"] == 847 and units[1]["main_pid"] == 0
    # systemctl show gives up on a template name: each unit is then shown alone, after a marker
    names = ["caddy.service", "foo-web@.service", "demo.service"]
    text = (REC / "batch_unit_template.txt").read_text()
    units = [parse_unit(t) for t in split_unit_batch(text, names)]
    assert [u["load_state"] for u in units] == ["loaded", "", "loaded"]
    assert units[2]["fragment_path"] == "/etc/systemd/system/demo.service"
    # no systemd: no blocks at all -> every unit reads as "" (reported, never guessed)
    assert [parse_unit(t)["load_state"] for t in split_unit_batch("", names)] == ["", "", ""]


def test_gather_script_batches_kinds_and_keeps_odd_args_alone() -> None:
    kinds = fact_kinds()
    queries = [FactQuery("host"), FactQuery("file", "/a"), FactQuery("deb", "curl"),
               FactQuery("file", "/b"), FactQuery("file", "/odd\nname"), FactQuery("deb", "curl"),
               FactQuery("unit", "x.service")]
    script = build_gather_script(queries, kinds, "N")
    assert script.count("stat --printf '@@path=") == 1          # /a and /b in one stat
    assert "'/odd\nname'" in script and script.count("echo '@@shipit:N:") == 5
    assert "@@shipit:N:batch:1" in script                          # named after its first query
    # a deb and a unit query alone use the one-arg commands
    assert "${db:Status-Abbrev}|${Version}" in script and "systemctl show" in script
    out = "\n".join([
        "@@shipit:N:fact:0", "cpus=4",
        "@@shipit:N:batch:1", "@@path=/a", "type=regular empty file", "mode=600", "owner=root",
        "group=root", "size=0", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  /a",
        "@@shipit:N:fact:2", "ii |7.88.1",
        "@@shipit:N:fact:4", "type=absent",
        "@@shipit:N:fact:5", "LoadState=loaded", ""])
    facts = split_gather_output(out, queries, kinds, "N")
    assert facts[FactQuery("host")]["cpus"] == 4
    assert facts[FactQuery("file", "/a")]["sha256"].startswith("e3b0c442")
    assert facts[FactQuery("file", "/b")]["exists"] is False
    assert facts[FactQuery("deb", "curl")]["version"] == "7.88.1"
    assert facts[FactQuery("unit", "x.service")]["load_state"] == "loaded"
