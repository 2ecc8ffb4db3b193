"""The one Layout: every path and unit name of an app on a host, from one place."""

from __future__ import annotations

import ast
from pathlib import Path

from shipit.layout import Layout

REPO = Path(__file__).resolve().parents[2]


def test_paths_and_units() -> None:
    lay = Layout("fsft-backend")
    assert lay.root == "/srv/fsft-backend"
    assert lay.release("r1") == "/srv/fsft-backend/releases/r1"
    assert lay.env_file("r1") == "/srv/fsft-backend/env/r1.env"
    assert lay.web_unit(8001) == "fsft-backend-web@8001.service"
    assert lay.unit_kind("fsft-backend-web@8001.service") == ("web", "8001")
    assert lay.unit_kind("fsft-backend-celery-beat@2.service") == ("celery-beat", "2")
    assert lay.unit_kind("other-web@8001.service") is None
    assert Layout.command_variable("celery-beat") == "SHIPIT_COMMAND_celery_beat"
    v = lay.variables("r1")
    assert v["paths"]["venv"] == "/srv/fsft-backend/releases/r1/venv"
    assert v["paths"]["slot_template"] == "/srv/fsft-backend/slots/%i"
    assert "release" not in lay.variables()["paths"]


def _string_constants(tree: ast.AST) -> list[str]:
    docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                  if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
                  and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    return [n.value for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings]


def test_the_layout_is_spelled_in_one_place() -> None:
    """#14: no code but shipit/layout.py spells the host layout (docstrings may describe it),
    and no built-in playbook does."""
    hits = []
    for path in sorted((REPO / "shipit").rglob("*.py")):
        if path.name == "layout.py" or "lab" in path.parts:
            continue
        for text in _string_constants(ast.parse(path.read_text())):
            if "/srv" in text:
                hits.append(f"{path.relative_to(REPO)}: {text!r}")
    for path in sorted((REPO / "shipit" / "playbooks").glob("*.yml")):
        hits += [f"{path.name}: {line}" for line in path.read_text().splitlines() if "/srv" in line]
    assert hits == []


def test_a_web_slot_listens_on_a_unix_socket_in_its_runtime_dir() -> None:
    lay = Layout("my-app")
    assert lay.web_socket_unit(8001) == "my-app-web@8001.socket"
    assert lay.web_socket(8001) == "/run/my-app/web-8001/web.sock"
    assert lay.live_socket == "/srv/my-app/web.sock"
    assert lay.caddy_upstream == "unix//srv/my-app/web.sock"
    assert lay.web_bind("%i").path == "/run/my-app/web-%i/web.sock"
    assert lay.web_bind("%i").uvicorn_args() == ["--fd", "3"]
    assert lay.web_bind(8000).gunicorn_args() == []  # gunicorn takes systemd's socket by LISTEN_FDS
    assert lay.slot_of_socket("/run/my-app/web-8001/web.sock") == 8001
    for other in ("/run/my-app/web-x/web.sock", "/run/other/web-8001/web.sock", "", "/run/my-app/web-8001/x"):
        assert lay.slot_of_socket(other) is None
    v = lay.variables()
    assert v["paths"]["web_socket_template"] == "/run/my-app/web-%i/web.sock"
    assert v["web_bind"]["uvicorn"] == "--fd 3" and v["units"]["web_socket"] == "my-app-web@%i.socket"
