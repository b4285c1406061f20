"""The package's import graph: every module imports only its own layer or the layers below,
there is no import circle, and the simulator stays out of the runtime.

Read from the source with ``ast`` (no import is executed), so the test sees imports inside
functions too; only ``if TYPE_CHECKING:`` blocks are ignored (they never run).  Run it alone
with ``pytest tests/test_architecture.py -q``; a failure names each offending import.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "td_graph_plugin"

# Bottom to top. A module may import from its own layer and from layers below it, never above.
LAYERS: list[set[str]] = [
    {"errors", "durations", "timeutil", "licensing", "guide", "logsetup", "clouds", "status"},
    {"", "spec", "hookspecs", "catalogue", "config", "state", "metrics"},  # "" = the package root
    {"graph", "discovery", "plan", "outputs", "formats", "sources", "plugins", "cluster"},
    {"collector"},
    {"isolation"},
    {"runtime", "observability", "simulator", "capture"},
    {"hosts", "cli"},
]
# The only modules that may import the simulator (it needs the [demo] extra).
SIMULATOR_USERS = {"td_graph_plugin.cli.demo"}
MAX_LINES = 450


def _modules() -> dict[str, Path]:
    out = {}
    for path in PKG.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST):
    """Every Import/ImportFrom, skipping the bodies of ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def imports_of(module: str) -> set[str]:
    """The td_graph_plugin modules ``module`` imports (a package's submodule when named)."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in _import_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in MODULES else mod for a in node.names]
        for t in targets:
            while t and t not in MODULES:
                t = t.rpartition(".")[0]
            if t.startswith("td_graph_plugin") and t != module:
                found.add(t)
    return found


GRAPH = {m: imports_of(m) for m in MODULES}


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _layer(module: str) -> int:
    top = _top(module)
    for i, names in enumerate(LAYERS):
        if top in names:
            return i
    raise AssertionError(f"{module}: its package {top!r} is in no layer of tests/test_architecture.py")


def test_every_module_has_a_layer():
    for m in MODULES:
        _layer(m)


def test_no_module_imports_from_a_layer_above_it():
    upward = sorted(
        f"{m} (layer {_layer(m)}) imports {d} (layer {_layer(d)})"
        for m, deps in GRAPH.items()
        for d in deps
        if _layer(d) > _layer(m)
    )
    assert not upward, "upward imports:\n" + "\n".join(upward)


def test_no_import_circles():
    """Tarjan's strongly connected components; any component of two or more is a circle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    circles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                circles.append(sorted(comp))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    assert not circles, "import circles:\n" + "\n".join(" <-> ".join(c) for c in circles)


def test_the_simulator_is_imported_only_by_the_demo():
    users = sorted(
        m
        for m, deps in GRAPH.items()
        if _top(m) != "simulator" and any(_top(d) == "simulator" for d in deps) and m not in SIMULATOR_USERS
    )
    assert not users, f"modules outside the demo that import the simulator: {users}"


def test_no_module_outside_the_simulator_is_over_the_size_limit():
    too_big = sorted(
        f"{m}: {n} lines"
        for m, path in MODULES.items()
        if _top(m) != "simulator" and (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
        and not _is_data_table(m)
    )
    assert not too_big, f"modules over {MAX_LINES} lines (split along a real seam):\n" + "\n".join(too_big)


# Modules that are mostly a data table (the built-in source catalogue: one spec per source).
DATA_TABLES = {"td_graph_plugin.sources.catalogue"}


def _is_data_table(module: str) -> bool:
    return module in DATA_TABLES


def test_the_checker_sees_an_upward_import(tmp_path):
    """The checker itself can fail: an import of ``runtime`` from ``collector`` is caught."""
    probe = PKG / "collector" / "_architecture_probe.py"
    assert not probe.exists()
    probe.write_text("def f():\n    from ..runtime import build_runtime\n", encoding="utf-8")
    try:
        MODULES["td_graph_plugin.collector._architecture_probe"] = probe
        deps = imports_of("td_graph_plugin.collector._architecture_probe")
        assert "td_graph_plugin.runtime" in deps
        assert _layer("td_graph_plugin.runtime") > _layer("td_graph_plugin.collector._architecture_probe")
    finally:
        MODULES.pop("td_graph_plugin.collector._architecture_probe", None)
        os.unlink(probe)


@pytest.mark.parametrize("command", ["--help", "run --help", "doctor --help", "isolate --help"])
def test_the_cli_imports_neither_the_simulator_nor_trustme(command):
    """``python -X importtime``-style check in a fresh interpreter: what ``td-graph COMMAND``
    loads before doing anything must not include the simulator or its test CA."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from td_graph_plugin.cli.main import main\n"
        f"try:\n    main({command.split()!r})\nexcept SystemExit:\n    pass\n"
        "bad = sorted(m for m in sys.modules if m.startswith('td_graph_plugin.simulator') or m == 'trustme')\n"
        "print('IMPORTED=' + ','.join(bad))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    assert last == "IMPORTED=", f"`td-graph {command}` imported {last}"
