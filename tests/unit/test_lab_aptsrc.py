from __future__ import annotations

from pathlib import Path

import pytest

from shipit.errors import PrerequisiteError
from shipit.lab.aptsrc import apt_conf_for_hosts, as_http, parse_deb822_mirror, parse_one_line_mirror, read_apt_mirror

# recorded from a Debian 12 machine (mirror host replaced by an example one)
DEB822 = """\
Types: deb
# http://snapshot.example/archive/debian/20250520T000000Z
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
# http://snapshot.example/archive/debian-security/20250520T000000Z
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""

SECURITY_FIRST = """\
Types: deb-src deb
URIs: https://mirror.example/debian-security
Suites: bookworm-security
Components: main

Types: deb
URIs: https://mirror.example/debian/
Suites: bookworm
Components: main
"""

ONE_LINE = """\
# deb cdrom:[Debian GNU/Linux 12]/ bookworm main
deb-src http://mirror.example/debian bookworm main
deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://mirror.example/debian bookworm main
deb http://mirror.example/debian-security bookworm-security main
"""


def test_deb822() -> None:
    assert parse_deb822_mirror(DEB822) == "http://mirror.example/debian"


def test_deb822_skips_security_and_https_becomes_http() -> None:
    assert as_http(parse_deb822_mirror(SECURITY_FIRST) or "") == "http://mirror.example/debian"


def test_one_line_format_with_options() -> None:
    assert parse_one_line_mirror(ONE_LINE) == "http://mirror.example/debian"


def test_read_apt_mirror_prefers_sources_dir(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(SECURITY_FIRST)
    (tmp_path / "sources.list").write_text("")
    assert read_apt_mirror(tmp_path) == "http://mirror.example/debian"


def test_read_apt_mirror_falls_back_to_sources_list(tmp_path: Path) -> None:
    (tmp_path / "sources.list").write_text(ONE_LINE)
    assert read_apt_mirror(tmp_path) == "http://mirror.example/debian"


def test_no_mirror_is_a_prerequisite_error(tmp_path: Path) -> None:
    with pytest.raises(PrerequisiteError):
        read_apt_mirror(tmp_path)


def test_apt_conf_for_hosts_copies_validity_settings() -> None:
    dump = 'Acquire::Retries "0";\nAcquire::Check-Valid-Until "false";\nAcquire::Check-Date "false";\n'
    text = apt_conf_for_hosts("http://10.231.7.1:3142", dump)
    assert 'Acquire::http::Proxy "http://10.231.7.1:3142";' in text
    assert 'Acquire::Check-Valid-Until "false";' in text and "Retries" not in text
    assert "Proxy" not in apt_conf_for_hosts(None, "")


def test_security_mirror_from_deb822_and_one_line(tmp_path: Path) -> None:
    from shipit.lab.aptsrc import parse_deb822_security, parse_one_line_security, read_security_mirror

    assert parse_deb822_security(DEB822) == "http://mirror.example/debian-security"
    assert parse_one_line_security(ONE_LINE) == "http://mirror.example/debian-security"
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(SECURITY_FIRST)
    assert read_security_mirror(tmp_path) == "http://mirror.example/debian-security"


def test_no_security_source_is_none(tmp_path: Path) -> None:
    from shipit.lab.aptsrc import read_security_mirror

    (tmp_path / "sources.list").write_text("deb http://mirror.example/debian bookworm main\n")
    assert read_security_mirror(tmp_path) is None


def test_hosts_sources_list_per_suite() -> None:
    from shipit.lab.aptsrc import render_sources_list

    text = render_sources_list("trixie", "http://mirror.example/debian", "http://mirror.example/debian-security")
    assert text.splitlines() == ["deb http://mirror.example/debian trixie main",
                                 "deb http://mirror.example/debian trixie-updates main",
                                 "deb http://mirror.example/debian-security trixie-security main"]
    assert "security" not in render_sources_list("bookworm", "http://mirror.example/debian", None)
