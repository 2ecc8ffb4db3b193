"""shipit installed from its wheel, outside the repository, deploys the example app (#14):
the built-in playbooks ship inside the package and are read with importlib.resources.

Builds the wheel with pip, installs it with its dependencies (from the package index) into a
fresh venv in a temp dir, and runs that venv's `shipit deploy` from a directory that is not
the repository, against the session lab.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_deploy import REPO, WEB, Env, copy_app, serving

from shipit.lab import LabState

pytestmark = pytest.mark.e2e


def test_the_wheel_installed_outside_the_repo_deploys(lab: LabState, tmp_path: Path) -> None:
    wheels, venv, work = tmp_path / "wheels", tmp_path / "venv", tmp_path / "work"
    work.mkdir()
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(REPO)],
                   check=True, capture_output=True, timeout=300)
    (wheel,) = wheels.glob("shipit-*.whl")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(wheel)], check=True,
                   capture_output=True, timeout=600)
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import shipit; print(shipit.__file__)"],
                           cwd=work, check=True, capture_output=True, text=True).stdout.strip()
    assert where.startswith(str(venv)), where  # the installed package, not the repository's
    app = copy_app(work / "app", main_suffix="\n# deployed by shipit installed from its wheel\n")
    (work / "home").mkdir()
    env = Env(lab, work / "home", work)
    result = subprocess.run([str(venv / "bin" / "shipit"), "deploy", "shipit-test", "--json",
                             "-i", str(lab.inventory), "--app", str(app)],
                            capture_output=True, text=True, timeout=900, cwd=work,
                            env={**os.environ, "HOME": str(env.home), "DB_PASSWORD": "e2e-Secret-pw-1"})
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    release = json.loads(result.stdout)["release"]
    assert serving(env) == {h: release for h in WEB}
