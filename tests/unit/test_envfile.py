"""Env files in systemd's quoting: values of any bytes, parsed by sh exactly as written."""

from __future__ import annotations

import subprocess

import pytest

from shipit import envfile

ODD = ["a'b\"c$d\ne f", "back\\slash\\", "`id`", "$(id)", "  spaced  ", "tab\there", "", "ünïcødé",
       "line\\\nend", "${HOME}", "#not a comment"]


@pytest.mark.parametrize("value", ODD)
def test_sh_reads_back_exactly_what_was_written(value: str) -> None:
    text = envfile.render({"X": value})
    # the same bytes come back through sh's parser (systemd's is checked on real hosts, e2e)
    out = subprocess.run(["sh", "-c", 'set -a; . "$0"; printf %s "$X"', "/dev/stdin"], input=text,
                         capture_output=True, text=True, check=True).stdout
    assert out == value


def test_refuses_what_no_environment_can_hold() -> None:
    with pytest.raises(ValueError, match="NUL"):
        envfile.quote("a\0b")
    with pytest.raises(ValueError, match="UTF-8"):
        envfile.quote("\udcff")
    with pytest.raises(ValueError, match="not a valid variable name"):
        envfile.render({"1BAD": "x"})
