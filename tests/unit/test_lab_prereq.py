from __future__ import annotations

import pytest

from shipit.errors import PrerequisiteError
from shipit.lab import prereq


def test_not_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prereq.os, "geteuid", lambda: 1000)
    with pytest.raises(PrerequisiteError, match="needs root"):
        prereq.check_prerequisites()


def test_missing_commands_name_the_packages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prereq.os, "geteuid", lambda: 0)
    monkeypatch.setattr(prereq, "_which", lambda cmd: None if cmd in ("debootstrap", "iptables") else "/x")
    with pytest.raises(PrerequisiteError) as e:
        prereq.check_prerequisites()
    assert e.value.message == "shipit lab needs more packages: apt-get install debootstrap iptables"
    assert e.value.exit_code == 3
