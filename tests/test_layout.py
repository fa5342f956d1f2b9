"""The layout's rules, read from the source: no import circles between modules, the engine
imports neither the server nor the build tools, and nothing that serves imports the
benchmarks."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("engine", "server", "trt_build")


def import_graph() -> dict[str, set[str]]:
    """{module: first-party modules it imports anywhere in its body (lazy imports too)}."""
    modules = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            modules[name.removesuffix(".__init__")] = path
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name and not name.startswith(target + "."):
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_module_imports_itself_through_others():
    assert cycles(import_graph()) == []


def test_the_engine_needs_neither_the_server_nor_the_build_tools():
    graph = import_graph()
    wrong = {
        (m, t) for m, ts in graph.items() for t in ts
        if m.startswith("engine") and t.startswith(("server", "trt_build"))
    }  # fmt: skip
    assert wrong == set()


def test_nothing_that_serves_imports_the_benchmarks():
    graph = import_graph()
    serving = [m for m in graph if m.startswith("server") and not m.startswith("server.bench")]
    wrong = {
        (m, t)
        for m in serving
        if m != "server.cli"
        for t in graph[m]
        if t.startswith("server.bench")
    }
    assert wrong == set()


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
