"""The layout of DESIGN.md, checked on the import statements.

Arrows point one way (registry <- avplug <- jobs <- tools), the project's module graph has no cycle
(function-level imports count: they only hide one; imports under ``if TYPE_CHECKING:`` do not, they
never run), and no module imports another module's ``_private`` name.
"""
import ast
import sys
from collections import deque
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
STDLIB_OK = set(sys.stdlib_module_names)
PROJECT_PACKAGES = ("avplug", "registry", "jobs", "tools")


def _imports(package: str):
    for path in sorted((REPO / package).rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield path, alias.name.split(".")[0]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                yield path, node.module.split(".")[0]


@pytest.mark.parametrize(
    "package, forbidden",
    [("registry", {"avplug", "jobs", "tools", "torch"}), ("avplug", {"jobs", "tools"}), ("jobs", {"tools"})],
)
def test_imports_point_one_way(package, forbidden):
    bad = [f"{p.relative_to(REPO)} imports {m}" for p, m in _imports(package) if m in forbidden]
    assert not bad, bad


def test_registry_depends_on_fvcore_only():
    third_party = {m for _, m in _imports("registry") if m not in STDLIB_OK and m not in {"registry", "__future__"}}
    assert third_party <= {"fvcore"}, third_party


def test_required_top_level_layout():
    for name in ("setup.cfg", "pyproject.toml", "avplug", "registry", "jobs", "tools", "tests", "configs", "benchmarks"):
        assert (REPO / name).exists(), name


def _imported_modules(folder: str):
    """``(path, dotted name)`` of every absolute import under ``folder``, ``from a import b`` as ``a`` and ``a.b``."""
    for path in sorted((REPO / folder).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                yield from ((path, alias.name) for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                yield path, node.module
                yield from ((path, f"{node.module}.{alias.name}") for alias in node.names)


@pytest.mark.parametrize("folder", ["avplug/data", "avplug/samplers", "avplug/models", "avplug/losses", "avplug/engine",
                                    "avplug/evaluation"])
def test_experiments_sit_above_engine_and_evaluation(folder):
    bad = sorted({f"{p.relative_to(REPO)} imports {m}" for p, m in _imported_modules(folder)
                  if m == "avplug.experiments" or m.startswith("avplug.experiments.")})
    assert not bad, bad


# -- the project's module graph ---------------------------------------------------------------------


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _project_modules() -> dict[str, Path]:
    """Every module of the project by dotted name (a package by its ``__init__``)."""
    return {_module_name(p): p for package in PROJECT_PACKAGES for p in sorted((REPO / package).rglob("*.py"))}


def _absolute(module: str, path: Path, node: ast.ImportFrom) -> str:
    """The absolute module name ``node`` imports from, relative imports resolved."""
    if not node.level:
        return node.module or ""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    base = package[: len(package) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def _imported(module: str, path: Path, node: ast.AST, modules) -> list[tuple[str, str | None]]:
    """``(project module, name taken from it or None)`` for each thing ``node`` imports.

    ``from package import submodule`` is an import of the submodule; parent packages that Python runs
    on the way are not counted (a package importing its own submodules is no cycle).
    """
    if isinstance(node, ast.Import):
        return [(alias.name, None) for alias in node.names if alias.name in modules]
    if not isinstance(node, ast.ImportFrom):
        return []
    source = _absolute(module, path, node)
    found = []
    for alias in node.names:
        if f"{source}.{alias.name}" in modules:
            found.append((f"{source}.{alias.name}", None))
        elif source in modules:
            found.append((source, alias.name))
    return found


def _is_type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None) if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_nodes(tree: ast.AST):
    """Every node at every depth, less the bodies of ``if TYPE_CHECKING:`` (annotations only, never run)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        if _is_type_checking(node):
            stack.extend(node.orelse)
        else:
            stack.extend(ast.iter_child_nodes(node))


def _project_imports():
    """``(module, path, line, imported module, imported name or None)`` at every depth of every module."""
    modules = _project_modules()
    for module, path in modules.items():
        for node in _runtime_nodes(ast.parse(path.read_text(), filename=str(path))):
            for target, name in _imported(module, path, node, modules):
                yield module, path, node.lineno, target, name


def _import_graph() -> dict[str, dict[str, str]]:
    """``graph[a][b]`` = where module ``a`` first imports module ``b`` (``path:line``)."""
    graph: dict[str, dict[str, str]] = {}
    for module, path, line, target, _ in _project_imports():
        if target != module:
            graph.setdefault(module, {}).setdefault(target, f"{path.relative_to(REPO)}:{line}")
    return graph


def _strongly_connected(graph: dict[str, dict[str, str]]) -> list[set[str]]:
    """Tarjan's components of more than one module (iterative: the graph can be deep)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, {}))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        components.append(component)
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph.get(child, {})))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return components


def _shortest_path(graph, start: str, goal: str, inside: set[str]) -> list[str]:
    previous = {start: None}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        if node == goal:
            path = [node]
            while previous[path[-1]] is not None:
                path.append(previous[path[-1]])
            return path[::-1]
        for child in sorted(graph.get(node, {})):
            if child in inside and child not in previous:
                previous[child] = node
                queue.append(child)
    raise AssertionError(f"{goal} is not reachable from {start} inside {inside}")


def _cycles(graph) -> list[list[str]]:
    """Shortest cycles that together use every import edge lying on some cycle."""
    cycles = []
    for component in _strongly_connected(graph):
        covered: set[tuple[str, str]] = set()
        for a in sorted(component):
            for b in sorted(set(graph[a]) & component):
                if (a, b) not in covered:
                    cycle = [a] + _shortest_path(graph, b, a, component)
                    covered.update(zip(cycle, cycle[1:]))
                    cycles.append(cycle)
    return cycles


def _chain(graph, cycle: list[str]) -> str:
    steps = [f"{a} ({graph[a][b]})" for a, b in zip(cycle, cycle[1:])]
    return " -> ".join(steps + [cycle[-1]])


def test_cycle_finder_reports_a_chain():
    graph = {"a": {"b": "a.py:1"}, "b": {"c": "b.py:2"}, "c": {"a": "c.py:3", "d": "c.py:4"}, "d": {}}
    assert [_chain(graph, c) for c in _cycles(graph)] == ["a (a.py:1) -> b (b.py:2) -> c (c.py:3) -> a"]
    assert _cycles({"a": {"b": "a.py:1"}, "b": {}}) == []


def test_no_import_cycles():
    graph = _import_graph()
    cycles = [_chain(graph, cycle) for cycle in _cycles(graph)]
    assert not cycles, "import cycles (function-level imports included):\n" + "\n".join(cycles)


# -- private names ----------------------------------------------------------------------------------


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _private_attribute_reads(module: str, path: Path, modules) -> list[str]:
    """``alias._name`` where ``alias`` is bound to another project module by an import in this file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    aliases = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            bound = [a for a in node.names if a.name in modules and (a.asname or "." not in a.name)]
            aliases.update({a.asname or a.name: a.name for a in bound})
        for target, name in _imported(module, path, node, modules):
            if name is None and isinstance(node, ast.ImportFrom):
                short = target.rsplit(".", 1)[-1]
                bound = next(a.asname or a.name for a in node.names if a.name == short)
                aliases[bound] = target
    return [
        f"{path.relative_to(REPO)}:{node.lineno} reads {aliases[node.value.id]}.{node.attr}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and _is_private(node.attr)
        and isinstance(node.value, ast.Name) and aliases.get(node.value.id, module) != module
    ]


def test_no_private_names_across_modules():
    modules = _project_modules()
    bad = [
        f"{path.relative_to(REPO)}:{line} imports {target}.{name}"
        for module, path, line, target, name in _project_imports()
        if name is not None and _is_private(name) and target != module
    ]
    for module, path in modules.items():
        bad += _private_attribute_reads(module, path, modules)
    bad.sort()
    assert not bad, "private names used across modules:\n" + "\n".join(bad)
