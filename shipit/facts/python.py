"""The ``venv`` fact kind: a Python virtual environment, read without running Python.

Arg: the venv's path. Reads ``pyvenv.cfg`` (``version = 3.11.2`` as ``python -m venv``
writes it, ``version_info = 3.11.2`` as ``uv venv`` does), the installed
distributions from ``lib/python3.*/site-packages/*.dist-info`` directory names (as
``pip freeze`` would list them) and the ``.shipit-requirements.sha256`` stamp the ``python``
module writes after installing a requirements file. Parsed shape::

    {"exists": True, "version": "3.11.2", "python": True,   # bin/python is executable
     "packages": {"fastapi": "0.110.0", "typing-extensions": "4.9.0"},  # PEP 503 names
     "requirements_sha256": "ab12…" | None,
     "relocatable": True}                                   # uv venv --relocatable made it
    {"exists": False, "version": None, "python": False, "packages": {},
     "requirements_sha256": None, "relocatable": False}
"""

from __future__ import annotations

import re
from typing import Any

from shipit.facts import FactKind, FactQuery
from shipit.quoting import q

STAMP = ".shipit-requirements.sha256"


def normalize(name: str) -> str:
    """PEP 503 normalized project name: ``Typing_Extensions`` -> ``typing-extensions``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def venv_command(path: str) -> str:
    """Print ``version=``, ``python=``, ``dist=`` lines and the requirements stamp."""
    return f"""v={q(path)}
if [ -f "$v/pyvenv.cfg" ]; then
  echo "version=$(sed -n -E 's/^version(_info)? *= *//p' "$v/pyvenv.cfg" | head -n 1)"
  if [ -x "$v/bin/python" ]; then echo python=yes; fi
  if grep -q '^relocatable *= *true' "$v/pyvenv.cfg"; then echo relocatable=yes; fi
  for d in "$v"/lib/python3*/site-packages/*.dist-info; do
    if [ -d "$d" ]; then echo "dist=${{d##*/}}"; fi
  done
  if [ -f "$v/{STAMP}" ]; then echo "stamp=$(cat "$v/{STAMP}")"; fi
else
  echo "version="
fi"""


def parse_venv(stdout: str) -> dict[str, Any]:
    """Parse :func:`venv_command` output into the documented shape."""
    version, python, stamp, relocatable = None, False, None, False
    packages: dict[str, str] = {}
    seen = False
    for line in stdout.splitlines():
        key, _, value = line.partition("=")
        value = value.strip()
        if key == "version":
            seen, version = bool(value), value or None
        elif key == "python":
            python = True
        elif key == "relocatable":
            relocatable = True
        elif key == "stamp":
            stamp = value or None
        elif key == "dist" and value.endswith(".dist-info"):
            name, _, ver = value[: -len(".dist-info")].partition("-")
            packages[normalize(name)] = ver
    if not seen:
        return {"exists": False, "version": None, "python": False, "packages": {},
                "requirements_sha256": None, "relocatable": False}
    return {"exists": True, "version": version, "python": python, "packages": packages,
            "requirements_sha256": stamp, "relocatable": relocatable}


VENV = FactKind("venv", venv_command, parse_venv, "a venv's Python version and installed distributions")
KINDS = [VENV]


def venv(path: str) -> FactQuery:
    """The ``venv`` fact of the virtual environment at ``path``."""
    return VENV.query(path)
