"""The import graph of the project's code has no cycles, between modules or between its top-level
packages (compressor, exporters, deploy, cli), and compressor does not reach up into the packages
built on it.

Every import counts, also one inside a function: a function-local import hides a cycle from the
interpreter, not from the design. Not edges: a submodule's implicit import of its parent package,
and `importlib.import_module` (a registry discovering its plug-ins by name).
"""

from __future__ import annotations

import ast
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("compressor", "exporters", "deploy")
SCRIPTS = ("cli.py",)
# The order of the layers: a package may import only the ones before it (cli sits on top).
LAYERS = ("compressor", "exporters", "deploy", "cli")

Graph = dict[str, dict[str, str]]  # module -> {imported module: "path:line" of the first such import}


def module_files() -> dict[str, Path]:
    files = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    for script in SCRIPTS:
        files[Path(script).stem] = ROOT / script
    return files


def _resolve(name: str, files: dict[str, Path]) -> str | None:
    """The project module `name` is, or the nearest one above it; None outside the project."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in files:
            return ".".join(parts[:end])
    return None


def imports_of(module: str, files: dict[str, Path]) -> dict[str, str]:
    """The project modules that `module` imports anywhere in its source, each with where."""
    path = files[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: dict[str, str] = {}
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [_resolve(alias.name, files) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module
            # `from a.b import c` imports module a.b.c when there is one, else a name from a.b
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else _resolve(base, files) for a in node.names]
        else:
            continue
        for target in targets:
            if target is not None and target not in found:
                found[target] = f"{path.relative_to(ROOT)}:{node.lineno}"
    return found


def import_graph() -> Graph:
    files = module_files()
    return {module: imports_of(module, files) for module in files}


def strongly_connected(graph) -> list[list[str]]:
    """Tarjan's components that hold a cycle (more than one member, or an edge to itself), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def enter(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)

    for root in sorted(graph):
        if root in index:
            continue
        enter(root)
        work = [(root, iter(sorted(graph[root])))]  # explicit stack: no recursion limit to meet
        while work:
            node, edges = work[-1]
            target = next((t for t in edges if t not in index or t in on_stack), None)
            if target is not None:
                if target in index:
                    low[node] = min(low[node], index[target])
                else:
                    enter(target)
                    work.append((target, iter(sorted(graph.get(target, ())))))
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while not component or component[-1] != node:
                    component.append(stack.pop())
                    on_stack.discard(component[-1])
                if len(component) > 1 or node in graph[node]:
                    found.append(sorted(component))
    return sorted(found)


def shortest_cycle(graph, component: list[str], start: str) -> list[str]:
    """A shortest cycle from `start` through `component` back to `start`."""
    members, parents, frontier = set(component), {start: None}, [start]
    while frontier:  # breadth first: the first way back is a shortest one
        following = []
        for node in frontier:
            if start in graph[node]:
                path = [node]
                while parents[path[-1]] is not None:
                    path.append(parents[path[-1]])
                return [*reversed(path), start]
            for target in sorted((set(graph[node]) & members) - set(parents)):
                parents[target] = node
                following.append(target)
        frontier = following
    raise ValueError(f"{start} is on no cycle in {component}")


def describe(graph: Graph, components: list[list[str]], shown: int = 3) -> str:
    """Each component's shortest cycles (one through each member, the same cycle once), with the
    import that makes each hop."""
    lines = []
    for component in components:
        lines.append(", ".join(component) + (" import each other:" if len(component) > 1 else " imports itself:"))
        cycles = {}
        for start in component:
            cycle = shortest_cycle(graph, component, start)
            cycles.setdefault(frozenset(zip(cycle, cycle[1:])), cycle)
        for cycle in sorted(cycles.values(), key=len)[:shown]:
            lines.append("    " + ", ".join(f"{a} -> {b} ({graph[a][b]})" for a, b in zip(cycle, cycle[1:])))
        if len(cycles) > shown:
            lines.append(f"    and {len(cycles) - shown} more cycles")
    return "import cycles:\n  " + "\n  ".join(lines)


def package_graph(graph: Graph) -> Graph:
    """Top-level packages, each with the first import that makes each of its edges."""
    packages: Graph = {}
    for module, targets in graph.items():
        top = module.split(".")[0]
        edges = packages.setdefault(top, {})
        for target, where in targets.items():
            if target.split(".")[0] != top:
                edges.setdefault(target.split(".")[0], f"{module} -> {target}, {where}")
    return packages


GRAPH = import_graph()


def test_the_graph_sees_every_kind_of_import():
    assert "compressor.errors" in GRAPH["compressor.registry"]  # relative, module level
    assert "compressor.onnx_import.builder" in GRAPH["exporters.onnx_export"]  # `from a.b import c`, c a module
    assert "compressor.files" in GRAPH["exporters.onnx_export"]  # `from a.b import name`
    assert "compressor.inspection" in GRAPH["cli"]  # inside a function
    assert "compressor.data" in GRAPH["deploy.zoo.examples"]  # a name from a package's __init__, in a function
    assert "compressor" not in GRAPH["compressor.errors"]  # a submodule does not depend on its package
    assert "compressor.onnx_import.ops" not in GRAPH["compressor.onnx_import.registry"]  # importlib: discovery
    toy = {"a": {"b": ""}, "b": {"a": ""}, "c": {"c": ""}, "d": {"a": ""}}
    assert strongly_connected(toy) == [["a", "b"], ["c"]]
    assert shortest_cycle({"a": {"b": "", "c": ""}, "b": {"c": ""}, "c": {"a": ""}}, ["a", "b", "c"], "a") == ["a", "c", "a"]


def test_no_import_cycles_between_modules():
    components = strongly_connected(GRAPH)
    assert not components, describe(GRAPH, components)


def test_no_import_cycles_between_packages():
    packages = package_graph(GRAPH)
    components = strongly_connected(packages)
    assert not components, describe(packages, components)


def test_packages_import_only_the_layers_below_them():
    """compressor is the core: it imports neither exporters nor deploy (they plug into it through
    entry points, compressor/plugins.py); exporters does not import deploy."""
    upward = sorted(
        f"{module} -> {target} ({where})"
        for module, targets in GRAPH.items()
        for target, where in targets.items()
        if LAYERS.index(target.split(".")[0]) > LAYERS.index(module.split(".")[0])
    )
    assert not upward, "imports from a layer above:\n  " + "\n  ".join(upward)
