"""python plans: version table, apt, venv, packages, requirements."""

from __future__ import annotations

from shipit.facts import FactQuery
from shipit.modules.base import PlanContext
from shipit.modules.python import PythonModule

M = PythonModule()
CTX = PlanContext(host="web1", host_facts={"codename": "bookworm", "apt_lists_age": 60})
NOVENV = {"exists": False, "version": None, "python": False, "packages": {},
          "requirements_sha256": None, "relocatable": False}
P = {"venv": "/srv/app/venv", "owner": "app", "packages": ["fastapi==0.110.0", "uvicorn"],
     "wheels_dir": "/srv/app/wheels"}


def facts(installed: bool, venv: dict[str, object]) -> dict[FactQuery, object]:
    out: dict[FactQuery, object] = {FactQuery("venv", "/srv/app/venv"): venv}
    for v in ("3.9", "3.10", "3.11", "3.12", "3.13"):
        for name in (f"python{v}", f"python{v}-venv"):
            ver = "3.11.2-1+b1" if installed and v == "3.11" else None
            out[FactQuery("deb", name)] = {"installed": ver is not None, "version": ver}
            out[FactQuery("apt_policy", name)] = {"installed": ver, "candidate": "3.11.2-1+b1"}
    return out


def test_fresh_host() -> None:
    plan = M.plan(P, facts(False, NOVENV), CTX)
    assert [c.reason for c in plan.changes] == [
        "install python3.11 3.11.2-1+b1, install python3.11-venv 3.11.2-1+b1",
        "create venv /srv/app/venv", "install fastapi==0.110.0, uvicorn"]
    assert "runuser -u app -- python3.11 -m venv -- /srv/app/venv" in plan.changes[1].script
    assert "--no-index --find-links /srv/app/wheels" in plan.changes[2].script


def test_converged_and_drift() -> None:
    venv = dict(NOVENV, exists=True, version="3.11.2", python=True,
                packages={"fastapi": "0.110.0", "uvicorn": "0.29.0", "pip": "23.0.1"})
    assert not M.plan(P, facts(True, venv), CTX).changed
    old = dict(venv, packages={"fastapi": "0.109.0", "uvicorn": "0.29.0"})
    assert [c.reason for c in M.plan(P, facts(True, old), CTX).changes] == [
        "install fastapi==0.110.0"]
    wrong = dict(venv, version="3.9.2")
    plan = M.plan(P, facts(True, wrong), CTX)
    assert plan.changes[0].reason == "re-create venv /srv/app/venv (has Python 3.9.2, want 3.11)"


def test_unavailable_version_fails_with_table() -> None:
    plan = M.plan(dict(P, version="3.12"), facts(True, NOVENV), CTX)
    assert plan.failed is not None
    assert plan.failed == ("Python 3.12 is not available on Debian 12 (bookworm): it has 3.11 "
                           "(what Debian 12 (bookworm) ships (its apt lists were never read))")


def test_requirements_stamp() -> None:
    p = {"venv": "/srv/app/venv", "requirements": "/srv/app/req.txt", "wheels_dir": "/w"}
    venv = dict(NOVENV, exists=True, version="3.11.2", python=True, requirements_sha256="aa")
    f = facts(True, venv) | {FactQuery("file", "/srv/app/req.txt"): {"sha256": "aa"}}
    assert not M.plan(p, f, CTX).changed
    f[FactQuery("file", "/srv/app/req.txt")] = {"sha256": "bb"}
    change = M.plan(p, f, CTX).changes[0]
    assert change.reason == "install requirements from /srv/app/req.txt"
    assert "echo bb > /srv/app/venv/.shipit-requirements.sha256" in change.script
    assert M.check_params({"packages": ["x"]}) == [
        ("venv", "packages/requirements need a venv"),
        ("wheels_dir", "hosts have no package index: give a wheel directory")]


UV = "/srv/app/releases/r1/.shipit/bin/uv"
R1 = {"venv": "/srv/app/releases/r1/venv", "owner": "app", "uv": UV,
      "requirements": "/srv/app/releases/r1/.shipit/requirements.txt",
      "packages": ["shipit-example-app"], "wheels_dir": "/srv/app/releases/r1/.shipit/wheels"}


def uv_facts(venv: dict[str, object], req_sha: str | None = "cc") -> dict[FactQuery, object]:
    f = facts(True, venv)
    f[FactQuery("venv", R1["venv"])] = venv
    f[FactQuery("file", R1["requirements"])] = {"sha256": req_sha}
    return f


def test_uv_release_venv_is_one_create_and_one_offline_install() -> None:
    plan = M.plan(R1, uv_facts(NOVENV), CTX)
    assert [c.reason for c in plan.changes] == [
        f"create venv {R1['venv']}",
        f"install requirements from {R1['requirements']}, install shipit-example-app"]
    create, install = plan.changes[0].script, plan.changes[1].script
    assert create == (f"rm -rf -- {R1['venv']}\n"  # an interrupted create's leftovers go first
                      f"runuser -u app -- {UV} venv --no-config --quiet --no-python-downloads --relocatable "
                      f"--python /usr/bin/python3.11 -- {R1['venv']} </dev/null")
    assert install.startswith(f"runuser -u app -- {UV} pip install --no-config --offline --no-index ")
    assert (f"--find-links {R1['wheels_dir']} --python {R1['venv']}/bin/python "
            f"-r {R1['requirements']} -- shipit-example-app </dev/null\n") in install
    assert install.endswith(f"echo cc > {R1['venv']}/.shipit-requirements.sha256")
    assert "--compile-bytecode" in install and "pip install --no-index" not in install


def test_uv_needs_no_venv_package_and_converges() -> None:
    debs = [q.arg for q in M.facts(dict(R1, version="3.11")) if q.kind == "deb"]
    assert debs == ["python3.11"]                       # no python3.11-venv with uv
    assert "python3.11-venv" in [q.arg for q in M.facts(dict(P, version="3.11")) if q.kind == "deb"]
    done = dict(NOVENV, exists=True, version="3.11.2", python=True, requirements_sha256="cc",
                packages={"shipit-example-app": "0.1.0", "fastapi": "0.165.0"})
    assert not M.plan(R1, uv_facts(done), CTX).changed
    changed = M.plan(R1, uv_facts(done, "dd"), CTX).changes
    assert [c.reason for c in changed] == [f"install requirements from {R1['requirements']}"]


def test_uv_values_are_shell_quoted() -> None:
    p = dict(R1, uv="/srv/my app/uv", packages=["a"], requirements=None)
    script = M.plan(p, uv_facts(NOVENV), CTX).changes[0].script
    assert "'/srv/my app/uv' venv" in script
    assert M.check_params(dict(R1, uv="bin/uv")) == [
        ("uv", "expected an absolute path of a uv binary on the host")]


# ---- cloning the live release's venv (#12 item 3) -------------------------------------------
LIVE = "/srv/app/releases/r0/venv"
LIVE_VENV = dict(NOVENV, exists=True, version="3.11.2", python=True, requirements_sha256="cc",
                 relocatable=True, packages={"shipit-example-app": "0.1.0", "fastapi": "0.165.0"})


def clone_facts(live: dict[str, object], req_sha: str = "cc") -> dict[FactQuery, object]:
    f = uv_facts(NOVENV, req_sha)
    f[FactQuery("venv", LIVE)] = live
    return f


def test_a_release_with_the_live_ones_requirements_clones_its_venv() -> None:
    p = dict(R1, clone_from=LIVE)
    assert FactQuery("venv", LIVE) in M.facts(p)
    plan = M.plan(p, clone_facts(LIVE_VENV), CTX)
    assert [c.reason for c in plan.changes] == [
        f"clone venv {LIVE} (same requirements) and reinstall shipit-example-app"]
    script = plan.changes[0].script
    assert f"runuser -u app -- cp -al -- {LIVE} {R1['venv']}" in script
    # the stamp is a new file (never written through the hard link), the app reinstalled
    assert f"rm -f -- {R1['venv']}/.shipit-requirements.sha256\n" in script
    assert "--reinstall-package shipit-example-app -- shipit-example-app" in script
    assert script.endswith(f"echo cc > {R1['venv']}/.shipit-requirements.sha256")


def test_no_clone_when_the_lock_python_or_relocatability_differ() -> None:
    p = dict(R1, clone_from=LIVE)
    for live, sha in ((LIVE_VENV, "dd"), (dict(LIVE_VENV, relocatable=False), "cc"),
                      (dict(LIVE_VENV, version="3.9.2"), "cc"), (NOVENV, "cc")):
        reasons = [c.reason for c in M.plan(p, clone_facts(live, sha), CTX).changes]
        assert reasons[0] == f"create venv {R1['venv']}", (live, sha)
    assert not M.plan(dict(p, clone_from=""), uv_facts(NOVENV), CTX).changes[0].reason.startswith("clone")


def test_an_existing_venv_is_never_replaced_by_a_clone() -> None:
    done = dict(LIVE_VENV)
    f = clone_facts(LIVE_VENV)
    f[FactQuery("venv", R1["venv"])] = done
    assert not M.plan(dict(R1, clone_from=LIVE), f, CTX).changed


def test_clone_from_needs_uv_and_an_absolute_path() -> None:
    assert ("clone_from", "cloning needs uv (give uv)") in M.check_params(dict(P, clone_from=LIVE))
    assert M.check_params(dict(R1, clone_from="venv"))[0][0] == "clone_from"
