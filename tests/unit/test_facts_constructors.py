"""#14: facts are asked for through typed constructors, never by a kind's name as a string."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

from shipit.facts import FactKind, FactQuery, accounts, app, files, host, packages, python, schedule, status, systemd
from shipit.facts.registry import fact_kinds

REPO = Path(__file__).resolve().parents[2]
MODULES = (accounts, app, files, host, packages, python, schedule, status, systemd)


def test_every_builtin_kind_has_a_typed_constructor() -> None:
    """Each kind ``k`` of a facts module has a function ``k(...)`` in that module returning the
    query of that kind (so a call site says ``files.file(path)``, not ``"file"``)."""
    seen = set()
    for module in MODULES:
        for kind in module.KINDS:
            constructor = getattr(module, kind.name)
            args = ["/x"] * len(inspect.signature(constructor).parameters)
            query = constructor(*args)
            assert isinstance(query, FactQuery) and query.kind == kind.name, (module.__name__, kind.name)
            seen.add(kind.name)
    assert seen == set(fact_kinds(plugins=False))


def test_constructors_encode_their_args() -> None:
    assert files.file("/etc/a") == FactQuery("file", "/etc/a")
    assert host.host() == FactQuery("host", "")
    assert files.tree_owner("/srv/x", "app", None) == FactQuery(
        "tree_owner", files.tree_owner_arg("/srv/x", "app", None))
    mine = FactKind("mine", lambda arg: "echo", str.strip)
    assert mine.query("a") == FactQuery("mine", "a")  # what a plugin's kind uses


def test_no_code_spells_a_fact_kind() -> None:
    """No code in shipit/ builds a FactQuery itself (with a kind's name as a string): only
    FactKind.query does, and the typed constructors call it."""
    hits = []
    for path in sorted((REPO / "shipit").rglob("*.py")):
        if path == REPO / "shipit" / "facts" / "__init__.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                func = node.func
                name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
                if name == "FactQuery":
                    hits.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert hits == []
