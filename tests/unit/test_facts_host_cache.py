"""The host fact's apt candidates are cached under a checksum of what they depend on: the
script runs here with ``apt-cache``, ``stat``, ``ls`` and ``id`` replaced by shims on PATH
(a non-root user, so the cache is ``$HOME/.cache/shipit``), counting the apt-cache runs."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from shipit.facts.host import COMMAND, parse

POLICY = """python3:
  Installed: (none)
  Candidate: 3.13.5-1
python3.13:
  Installed: (none)
  Candidate: 3.13.5-2
caddy:
  Installed: (none)
  Candidate: 2.6.2-5
"""


def _shims(tmp: Path) -> dict[str, str]:
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    shims = {
        "apt-cache": f'echo run >> {tmp}/apt-cache.runs\ncat {tmp}/policy.txt',
        "stat": f'cat {tmp}/apt-state.txt',          # what the cache key is computed from
        "ls": 'echo main_binary-amd64_Packages',       # apt has lists
        "id": 'echo 1000',                             # not root: the cache is in $HOME
    }
    for name, body in shims.items():
        path = bin_dir / name
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(0o755)
    (tmp / "policy.txt").write_text(POLICY)
    (tmp / "apt-state.txt").write_text("/var/lib/apt/lists/x_Packages 100 2026-12-01\n")
    (tmp / "home").mkdir()
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}", "HOME": str(tmp / "home"), "LC_ALL": "C"}


def _gather(env: dict[str, str]) -> dict[str, object]:
    out = subprocess.run(["sh", "-s"], input=COMMAND, capture_output=True, text=True, env=env, timeout=30).stdout
    return parse(out)


def test_apt_candidates_are_read_once_until_the_apt_state_changes(tmp_path: Path) -> None:
    env = _shims(tmp_path)
    runs = tmp_path / "apt-cache.runs"
    first = _gather(env)
    assert (first["python3_candidate"], first["caddy_candidate"], first["apt_pythons"]) == \
        ("3.13.5-1", "2.6.2-5", ["3.13"])
    apt_keys = ("python3_candidate", "caddy_candidate", "apt_pythons", "apt_lists")
    for _ in range(2):
        again = _gather(env)
        assert {k: again[k] for k in apt_keys} == {k: first[k] for k in apt_keys}
    assert runs.read_text().count("run") == 1  # the second and third gathers read the cache
    cached = list((tmp_path / "home" / ".cache" / "shipit").iterdir())
    assert len(cached) == 1 and cached[0].name.startswith("apt-candidates-")

    # apt-get update (new lists) or a new pin changes the key: apt is asked again, the old
    # answer is dropped
    (tmp_path / "policy.txt").write_text(POLICY.replace("2.6.2-5", "2.6.2-6"))
    (tmp_path / "apt-state.txt").write_text("/var/lib/apt/lists/x_Packages 120 2026-12-02\n")
    assert _gather(env)["caddy_candidate"] == "2.6.2-6"
    assert runs.read_text().count("run") == 2
    assert len(list((tmp_path / "home" / ".cache" / "shipit").iterdir())) == 1


def test_no_candidates_are_not_cached(tmp_path: Path) -> None:
    """apt answering nothing (a broken cache, a lock) is asked again next time."""
    env = _shims(tmp_path)
    (tmp_path / "policy.txt").write_text("")
    assert _gather(env)["python3_candidate"] == ""
    assert _gather(env)["python3_candidate"] == ""
    assert (tmp_path / "apt-cache.runs").read_text().count("run") == 2
    assert not (tmp_path / "home" / ".cache" / "shipit").exists()
