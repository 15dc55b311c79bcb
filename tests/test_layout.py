"""The layout of DESIGN.md: registry <- avplug <- jobs <- tools, checked on the import statements."""
import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
STDLIB_OK = set(__import__("sys").stdlib_module_names)


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
