"""Modules from other packages (#14): a package with a ``shipit.modules`` entry point adds a
module that playbooks can use, without editing shipit. The fixture package lives in
tests/fixtures/shipit-hello and is installed (pip, no dependencies) into a temporary dir that
joins sys.path for the test."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipit.executor import Executor, RunOptions
from shipit.facts.registry import fact_kinds
from shipit.inventory import load_inventory
from shipit.modules.base import PlanContext
from shipit.modules.registry import PluginError, builtin_modules
from shipit.playbook import load_playbook
from shipit.pool import TransportPool
from shipit.testing import LocalShellTransport, run_local

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "shipit-hello"


@pytest.fixture(scope="module")
def plugin_on_path(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    target = tmp_path_factory.mktemp("plugins")
    source = tmp_path_factory.mktemp("plugin-src") / FIXTURE.name
    # built from a copy: setuptools writes build/ and *.egg-info beside the sources, and the
    # checkout may be read-only (the unit layer runs as any user)
    shutil.copytree(FIXTURE, source, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(source)], check=True, capture_output=True)
    sys.path.insert(0, str(target))
    try:
        yield target
    finally:
        sys.path.remove(str(target))
        sys.modules.pop("shipit_hello", None)


def test_a_plugin_module_is_found_and_runs_from_a_playbook(plugin_on_path: Path, tmp_path: Path) -> None:
    modules = builtin_modules()
    assert "hello" in modules and type(modules["hello"]).__module__ == "shipit_hello"
    greeting = tmp_path / "greeting.txt"
    (tmp_path / "inv.yml").write_text("hosts: {local: {address: 127.0.0.1}}\n")
    (tmp_path / "site.yml").write_text(
        f"- hosts: all\n  tasks:\n    - name: Greet\n      hello: {{path: '{greeting}', who: plugins}}\n")
    inv = load_inventory(tmp_path / "inv.yml")
    book = load_playbook(tmp_path / "site.yml", modules, inv)
    pool = TransportPool(lambda host: LocalShellTransport(host))
    first = Executor(inv, pool, modules, fact_kinds(), options=RunOptions()).run_playbook(book)
    assert not first.failed and first.recap["local"].changed == 1
    assert greeting.read_text() == "Hello, plugins\n"
    again = Executor(inv, pool, modules, fact_kinds(), options=RunOptions()).run_playbook(book)
    assert again.recap["local"].changed == 0  # idempotent: the second run changes nothing


def test_a_plugin_module_is_tested_with_run_local(plugin_on_path: Path, tmp_path: Path) -> None:
    """The README's "Testing a module" example, on the fixture's module."""
    import shipit_hello

    hello = shipit_hello.HelloModule()
    ctx = PlanContext(host="local", host_facts={})
    first = run_local(hello, {"path": str(tmp_path / "motd")}, ctx)
    assert first.ok and first.plan.changed
    assert (tmp_path / "motd").read_text() == "Hello, world\n"
    assert not run_local(hello, {"path": str(tmp_path / "motd")}, ctx).plan.changed


def test_a_plugin_reusing_a_builtin_name_is_an_error(plugin_on_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shipit_hello  # type: ignore[import-not-found]

    monkeypatch.setattr(shipit_hello.HelloModule, "name", "apt")
    with pytest.raises(PluginError, match="already taken"):
        builtin_modules()


def test_a_plugin_that_fails_to_import_names_its_entry_point(monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib.metadata import EntryPoint

    from shipit import plugins
    from shipit.facts.registry import fact_kinds

    broken = EntryPoint("broken", "no_such_package_x.facts:KINDS", "shipit.facts")
    monkeypatch.setattr(plugins, "entry_points", lambda group: [broken] if group == "shipit.facts" else [])
    with pytest.raises(PluginError, match=r"fact plugin broken \(no_such_package_x.facts:KINDS\) failed to load: "
                                          "ModuleNotFoundError") as info:
        fact_kinds()
    assert info.value.exit_code == 3
