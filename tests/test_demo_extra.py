"""The simulator is an extra: without trustme, ``td-graph demo``/``simulate`` say what to install.

``monkeypatch.setitem(sys.modules, "trustme", None)`` makes ``import trustme`` fail as it does on
a runtime-only install (``pip install td-graph-plugin`` without the ``demo`` extra).
"""

from __future__ import annotations

import ast
import pathlib
import sys

import pytest

from td_graph_plugin.cli import demo
from td_graph_plugin.cli.main import main

PACKAGE = pathlib.Path(demo.__file__).resolve().parents[1]


@pytest.fixture
def no_trustme(monkeypatch):
    monkeypatch.setitem(sys.modules, "trustme", None)


@pytest.mark.parametrize("command", ["demo", "simulate"])
def test_missing_trustme_names_the_extra_to_install(no_trustme, capsys, command):
    run = demo.run_demo if command == "demo" else demo.run_simulate
    assert run() == demo.MISSING_EXIT
    out, err = capsys.readouterr()
    assert out == ""
    assert f"td-graph {command}: td-graph {command} needs the simulator's test CA" in err
    assert "pip install 'td-graph-plugin[demo]'" in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_cli_demo_without_trustme_exits_with_the_message(no_trustme, capsys):
    assert main(["demo"]) == demo.MISSING_EXIT
    err = capsys.readouterr().err
    assert "pip install 'td-graph-plugin[demo]'" in err and "Traceback" not in err


def test_simulator_is_available_with_the_extra():
    assert demo.simulator_missing("demo") is None


def _module_level_imports(path: pathlib.Path) -> list[str]:
    """Modules imported by top-level statements (incl. ``if``/``try`` blocks, not functions)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts[:-1])  # the package a relative import of level 1 names
    found: list[str] = []

    def visit(nodes):
        for node in nodes:
            if isinstance(node, ast.Import):
                found.extend(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = parts[: len(parts) - node.level + 1]
                    mod = ".".join(base + ([node.module] if node.module else []))
                else:
                    mod = node.module or ""
                found.append(mod)
                found.extend(f"{mod}.{a.name}" for a in node.names)
            elif isinstance(node, (ast.If, ast.Try)):
                visit(node.body)
                visit(getattr(node, "orelse", []))
                visit(getattr(node, "finalbody", []))
                for h in getattr(node, "handlers", []):
                    visit(h.body)

    visit(tree.body)
    return found


def test_only_the_simulator_and_the_demo_command_import_the_simulator_at_module_level():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] == "simulator" or rel.as_posix() == "cli/demo.py":
            continue
        if any(m.startswith("td_graph_plugin.simulator") for m in _module_level_imports(path)):
            offenders.append(rel.as_posix())
    assert offenders == []
