"""Pure parts of `shipit console`: the systemd-run argv and the current-release lookup."""

from __future__ import annotations

import shlex
import subprocess

from shipit import console, hardening
from shipit.layout import Layout

LAY = Layout("example")
REL = "20261202T130000Z-ab12cd34ef56"


def props(argv: list[str]) -> list[str]:
    return [argv[i + 1] for i, w in enumerate(argv) if w == "-p"]


def test_console_runs_as_the_app_user_in_the_release_with_its_env_files() -> None:
    argv = console.console_argv(LAY, REL, "example", ["python", "manage.py", "shell"], tty=True)
    assert argv[0] == "systemd-run" and "--pty" in argv and "--pipe" not in argv
    p = props(argv)
    assert "User=example" in p and "Group=example" in p
    assert f"WorkingDirectory={LAY.release(REL)}" in p
    assert f"EnvironmentFile={LAY.env_file(REL)}" in p and f"EnvironmentFile={LAY.release_env(REL)}" in p
    assert f"Environment=PATH={LAY.venv(REL)}/bin:/usr/local/bin:/usr/bin:/bin" in p
    assert not any(x.startswith("RuntimeMaxSec") for x in p)
    # the command is words after a sh that execs them: found on the unit's PATH (the venv's)
    assert argv[argv.index("/bin/sh"):] == ["/bin/sh", "-c", 'exec "$@"', "shipit-console",
                                            "python", "manage.py", "shell"]


def test_without_a_terminal_it_pipes_with_a_time_limit_and_a_default_shell() -> None:
    argv = console.console_argv(LAY, REL, "example", [], tty=False, timeout=90.5)
    assert "--pipe" in argv and "--pty" not in argv and "RuntimeMaxSec=90" in props(argv)
    assert argv[-2:] == list(console.DEFAULT_COMMAND)


def test_pipe_script_quotes_every_word_and_closes_stdin() -> None:
    argv = console.console_argv(LAY, REL, "example", ["python", "-c", "print('$X \"y\"')"], tty=False)
    script = console.pipe_script(argv)
    assert script.endswith(" </dev/null\n")
    assert shlex.split(script.removesuffix(" </dev/null\n")) == argv


def test_the_sh_wrapper_passes_words_through_exactly() -> None:
    """What the unit runs: sh -c 'exec "$@"' keeps each word whole (quotes, $, newlines)."""
    word = 'a "b" $HOME\n`c`'
    out = subprocess.run(["/bin/sh", "-c", 'exec "$@"', "shipit-console", "printf", "%s", word],
                         capture_output=True, text=True, check=True).stdout
    assert out == word


def test_current_release_lookup() -> None:
    script = console.current_script(LAY)
    assert shlex.split(script)[:3] == ["readlink", "--", LAY.current]
    assert console.parse_current(f"{REL}\n") == REL
    assert console.parse_current("\n") is None
    assert console.parse_current("../../etc\n") is None


def test_stdin_is_mirrored_only_from_our_foreground_terminal(tmp_path: object) -> None:
    import io
    import os
    import pty

    from shipit.transport import _foreground_tty

    r, w = os.pipe()
    master, slave = pty.openpty()  # a terminal, but not this process's controlling one
    try:
        with os.fdopen(r, "rb", closefd=False) as pipe, os.fdopen(slave, "rb", closefd=False) as tty:
            assert not _foreground_tty(pipe) and not _foreground_tty(io.StringIO())
            assert not _foreground_tty(tty)
    finally:
        for fd in (r, w, master, slave):
            os.close(fd)


def test_the_console_runs_in_the_sandbox_of_the_app_units() -> None:
    """A console is the app's code run by hand: it gets no more than the app's units do."""
    p = props(console.console_argv(LAY, REL, "example", ["python"], tty=True))
    for directive in hardening.directives([LAY.shared]):
        assert directive in p
    assert "ProtectSystem=strict" in p and f"ReadWritePaths=-{LAY.shared}" in p
    assert "ProtectSystem=full" not in p
