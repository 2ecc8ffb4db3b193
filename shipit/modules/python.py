"""The ``python`` module: a distro Python (apt), optionally a venv with packages from wheels.

Hosts have no package index access, so packages are installed only from a wheel directory
already on the host, e.g. the release artifact's ``.shipit/wheels``. Python comes from the
distro's own packages (``python3.X``, plus ``python3.X-venv`` for the pip path). Which X.Y a
host offers comes from its ``host`` facts (installed ``/usr/bin/python3.X`` and the
``python3.X`` packages in its apt lists, :func:`shipit.distro.available_pythons`); a version it
does not offer fails the task naming the host's release and what it has. Without ``version``,
the distro's own ``python3`` (:func:`shipit.distro.default_python`).

Two ways to build the venv:

- with ``uv`` (the path of a uv binary on the host, e.g. the artifact's ``.shipit/bin/uv``):
  ``uv venv --python /usr/bin/python3.X`` (no ensurepip, no pip in the venv) and
  ``uv pip install --offline --no-index --find-links WHEELS_DIR --compile-bytecode`` (bytecode
  compiled as pip would: the app user cannot write ``__pycache__`` in a root-owned venv);
- without: ``python3.X -m venv`` and the venv's ``pip install --no-index --find-links``.

Cloning (``clone_from``, with ``uv``): a new venv whose requirements file has the sha256 the
venv ``clone_from`` was installed from (its stamp), same Python X.Y, made relocatable
(``uv venv --relocatable``: its scripts find their interpreter from their own path), is a
hard-link copy of it (``cp -al``: no decompression, no byte-compilation of the dependencies)
in which only ``packages`` are reinstalled (``--reinstall-package``: uv unlinks the old
files and writes new ones, it never writes into a linked file; the stamp is replaced, not
rewritten). A code-only release then builds its venv in well under a second; the previous
release's venv is left as it was. New venvs are made relocatable so the next one can clone.

Idempotence: apt packages via the ``apt`` module's plan; the venv is ok when its
``pyvenv.cfg`` has the wanted X.Y (otherwise it is removed and re-created); ``packages`` are
compared with the venv's ``*.dist-info`` names (``name`` or ``name==version``);
``requirements`` (a file on the host) is re-installed when its sha256 differs from the stamp
written after the last successful install. venv and pip run as ``owner`` (``runuser``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from shipit.distro import RELEASES, available_pythons, default_python, describe
from shipit.facts import FactQuery, files
from shipit.facts import python as python_facts
from shipit.facts.python import STAMP, normalize
from shipit.modules.apt import AptModule
from shipit.modules.base import Change, Module, Param, Plan, PlanContext, q

REQ_RE = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*)(==([A-Za-z0-9.+!_-]+))?")
_APT = AptModule()


def _apt_params(params: Mapping[str, Any], version: str) -> dict[str, Any]:
    # uv creates venvs without the venv module and ensurepip: python3.X-venv only for pip
    names = [f"python{version}"] if params.get("uv") else [f"python{version}", f"python{version}-venv"]
    return {"name": names, "state": "present", "update_cache": True, "cache_valid_time": 3600}


def _as(owner: str | None, words: str) -> str:
    return f"runuser -u {q(owner)} -- {words}" if owner else words


def _create(uv: str | None, version: str, venv: str) -> str:
    """The command creating ``venv`` with the distro's ``/usr/bin/python{version}``."""
    if uv:
        return (f"{q(uv)} venv --no-config --quiet --no-python-downloads --relocatable "
                f"--python {q('/usr/bin/python' + version)} -- {q(venv)}")
    return f"python{version} -m venv -- {q(venv)}"


def _install(uv: str | None, venv: str, wheels_dir: str) -> str:
    """The install command (requirements or packages follow) into ``venv``, offline from
    ``wheels_dir``."""
    if uv:
        return (f"{q(uv)} pip install --no-config --offline --no-index --no-cache --quiet "
                f"--compile-bytecode --find-links {q(wheels_dir)} --python {q(venv + '/bin/python')}")
    return f"{q(venv + '/bin/pip')} install --no-index --find-links {q(wheels_dir)}"


class PythonModule(Module):
    """Install the distro's Python, create a venv and install wheels into it."""

    name = "python"
    doc = "Distro Python (apt), a venv, and packages from a wheel directory on the host."
    params = {
        "version": Param(str, help='X.Y, e.g. "3.11"; default: the distro\'s python3'),
        "venv": Param(str, help="absolute path of a venv to create"),
        "owner": Param(str, help="user owning the venv (venv and pip run as this user)"),
        "packages": Param(list, help='distributions to install, "name" or "name==version"'),
        "requirements": Param(str, help="requirements file on the host"),
        "wheels_dir": Param(str, help="wheel directory on the host (pip --find-links)"),
        "uv": Param(str, help="uv binary on the host (e.g. RELEASE/.shipit/bin/uv): build the "
                              "venv with uv instead of venv + pip"),
        "clone_from": Param(str, help="a venv (e.g. the live release's) to hard-link when it was "
                                      "installed from the same requirements (uv only; \"\": none)"),
    }

    def check_params(self, params: Mapping[str, Any]) -> list[tuple[str, str]]:
        errors = []
        version = params.get("version")
        if version is not None and not re.fullmatch(r"3\.\d+", str(version)):
            errors.append(("version", 'expected "3.X" as a quoted string, e.g. "3.11"'))
        for p in params.get("packages") or []:
            if not isinstance(p, str) or not REQ_RE.fullmatch(p):
                errors.append(("packages", f"{p!r}: expected name or name==version"))
        wants_pip = params.get("packages") or params.get("requirements")
        if wants_pip and not params.get("venv"):
            errors.append(("venv", "packages/requirements need a venv"))
        if wants_pip and not params.get("wheels_dir"):
            errors.append(("wheels_dir", "hosts have no package index: give a wheel directory"))
        uv = params.get("uv")
        if uv is not None and not str(uv).startswith("/"):
            errors.append(("uv", "expected an absolute path of a uv binary on the host"))
        if uv and not params.get("venv"):
            errors.append(("uv", "uv builds a venv: give venv"))
        clone = params.get("clone_from")
        if clone and not str(clone).startswith("/"):
            errors.append(("clone_from", "expected the absolute path of a venv on the host, or \"\""))
        if clone and not uv:
            errors.append(("clone_from", "cloning needs uv (give uv)"))
        return errors

    def _version(self, params: Mapping[str, Any], host_facts: Mapping[str, Any]) -> tuple[str | None, str]:
        have, source = available_pythons(host_facts)
        wanted = params.get("version") or default_python(host_facts)
        if wanted is None:
            return None, (f"cannot tell which Python {describe(host_facts)} ships (no python3 "
                          "in its apt lists, none installed): give a version")
        if wanted not in have:
            return None, (f"Python {wanted} is not available on {describe(host_facts)}: it has "
                          f"{', '.join(have) or 'none'} ({source})")
        return wanted, ""

    def facts(self, params: Mapping[str, Any]) -> list[FactQuery]:
        # Facts cannot depend on host facts, so ask for every candidate version's packages
        # only when the version is given; otherwise for each known release's python3.
        versions = [params["version"]] if params.get("version") else \
            sorted({r.python for r in RELEASES.values()})
        queries: list[FactQuery] = []
        for v in versions:
            queries += _APT.facts(_apt_params(params, v))
        if params.get("venv"):
            queries.append(python_facts.venv(params["venv"]))
        if params.get("requirements"):
            queries.append(files.file(params["requirements"]))
        if params.get("clone_from") and params.get("venv") and params["clone_from"] != params["venv"]:
            queries.append(python_facts.venv(params["clone_from"]))
        return queries

    def plan(self, params: Mapping[str, Any], facts: Mapping[FactQuery, Any],
             ctx: PlanContext) -> Plan:
        version, error = self._version(params, ctx.host_facts)
        if version is None:
            return Plan(failed=error)
        apt_plan = _APT.plan(_apt_params(params, version), facts, ctx)
        if apt_plan.failed:
            return apt_plan
        changes = list(apt_plan.changes)
        venv, owner, uv = params.get("venv"), params.get("owner"), params.get("uv")
        if not venv:
            return Plan(tuple(changes))
        state = facts[python_facts.venv(venv)]
        have = (state["version"] or "").split(".")[:2]
        fresh = False
        if (clone := self._clone(params, facts, state, version)) is not None:
            return Plan((*changes, clone))
        if not state["exists"] or not state["python"] or have != version.split("."):
            why = "create venv " + venv if not state["exists"] else \
                f"re-create venv {venv} (has Python {state['version']}, want {version})"
            # always clear the path first: an interrupted create leaves a directory without
            # pyvenv.cfg, which the fact reports as absent and which `uv venv` refuses to reuse
            rm = f"rm -rf -- {q(venv)}\n"
            changes.append(Change(why, rm + _as(owner, _create(uv, version, venv)) + " </dev/null"))
            fresh = True
        pip = _as(owner, _install(uv, venv, params.get("wheels_dir") or ""))
        installed = {} if fresh else state["packages"]
        missing = []
        for spec in params.get("packages") or []:
            match = REQ_RE.fullmatch(spec)
            assert match is not None            # check_params guarantees it
            have_ver = installed.get(normalize(match.group(1)))
            if have_ver is None or (match.group(3) and have_ver != match.group(3)):
                missing.append(spec)
        req = params.get("requirements")
        digest = None
        if req:
            digest = facts[files.file(req)]["sha256"]
            if digest is None:
                return Plan(failed=f"requirements file {req} not found on the host")
            if not fresh and state["requirements_sha256"] == digest:
                req = None                      # installed, stamp matches
        stamp = f"\necho {digest} > {q(f'{venv}/{STAMP}')}"
        pkgs = " ".join(map(q, missing))
        if uv and req and missing:
            # one uv run: one offline resolution, one byte-compilation of the venv
            changes.append(Change(f"install requirements from {req}, install {', '.join(missing)}",
                                  f"{pip} -r {q(req)} -- {pkgs} </dev/null{stamp}"))
        else:
            if missing:
                changes.append(Change("install " + ", ".join(missing),
                                      f"{pip} -- {pkgs} </dev/null"))
            if req:
                changes.append(Change(f"install requirements from {req}",
                                      f"{pip} -r {q(req)} </dev/null{stamp}"))
        return Plan(tuple(changes))

    @staticmethod
    def _clone(params: Mapping[str, Any], facts: Mapping[FactQuery, Any], state: Mapping[str, Any],
               version: str) -> Change | None:
        """The change cloning ``clone_from`` into the (absent) venv, or None when it cannot
        (see the module docstring: same requirements stamp, same X.Y, relocatable)."""
        venv, source, uv = params.get("venv"), params.get("clone_from"), params.get("uv")
        req = params.get("requirements")
        if not (source and uv and req and venv and source != venv) or (state["exists"] and state["python"]):
            return None
        other = facts[python_facts.venv(source)]
        digest = facts[files.file(req)]["sha256"]
        same_python = (other["version"] or "").split(".")[:2] == version.split(".")
        if not (other["exists"] and other["python"] and other["relocatable"] and same_python
                and digest and other["requirements_sha256"] == digest):
            return None
        owner = params.get("owner")
        stamp = q(f"{venv}/{STAMP}")
        script = (f"rm -rf -- {q(venv)}\n"
                  f"{_as(owner, f'cp -al -- {q(source)} {q(venv)}')}\n"
                  f"rm -f -- {stamp}\n")
        packages = [str(p) for p in params.get("packages") or []]
        if packages:
            names = [m.group(1) for p in packages if (m := REQ_RE.fullmatch(p))]
            reinstall = " ".join(f"--reinstall-package {q(n)}" for n in names)
            script += (f"{_as(owner, _install(uv, venv, params.get('wheels_dir') or ''))} {reinstall} "
                       f"-- {' '.join(map(q, packages))} </dev/null\n")
        script += f"echo {digest} > {stamp}"
        what = f" and reinstall {', '.join(packages)}" if packages else ""
        return Change(f"clone venv {source} (same requirements){what}", script)
