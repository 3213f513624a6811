"""The package's layers import only downwards, and no module imports itself back through others.

The layers (README, "How it works"): each part of `sdt` may import its own modules and the
parts of the layers below it, never a part of its own layer or of a layer above.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parent.parent / "sdt"

# part of the package -> layer (0 is the ground)
LAYERS = {
    "core": 0,
    "space": 1, "data": 1, "neural": 1, "symbolic": 1,
    "actions": 2, "strategies": 2,
    "run": 3,
    "cli": 4, "dashboard": 4,
    "api": 5,        # the Python API (tune() may print through the command line's console lines)
    "__main__": 5,   # `python -m sdt`, the command line's entry point
}


def part_of(module: str) -> str:
    """`sdt.run.loop` -> `run`; the package's own `sdt` (its __init__, the API facade) -> `api`."""
    pieces = module.split(".")
    return "api" if len(pieces) == 1 else pieces[1]


def module_name(path: Path, package_dir: Path) -> str:
    relative = path.relative_to(package_dir.parent).with_suffix("")
    pieces = list(relative.parts)
    if pieces[-1] == "__init__":
        pieces.pop()
    return ".".join(pieces)


def imported_modules(source: str, importer: str, known: set[str]) -> set[str]:
    """Every module of the package that `source` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from sdt.run import loop` imports sdt.run.loop when that is a module
            names = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in known else node.module
                     for alias in node.names]
        else:
            continue
        found |= {name for name in names if name.split(".")[0] == "sdt" and name != importer}
    return found


def import_graph(package_dir: Path) -> dict[str, set[str]]:
    paths = sorted(package_dir.rglob("*.py"))
    known = {module_name(path, package_dir) for path in paths}
    return {module_name(path, package_dir): imported_modules(path.read_text(), module_name(path, package_dir), known)
            for path in paths}


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    violations = []
    for importer, imported in sorted(graph.items()):
        for module in sorted(imported):
            source_part, target_part = part_of(importer), part_of(module)
            if source_part not in LAYERS or target_part not in LAYERS:
                violations.append(f"{importer} -> {module}: part missing from the layer table")
            elif source_part != target_part and LAYERS[target_part] >= LAYERS[source_part]:
                violations.append(f"{importer} (layer {LAYERS[source_part]}) imports {module} "
                                  f"(layer {LAYERS[target_part]})")
    return violations


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles between modules (each found once, from its first module in DFS order)."""
    found, state = [], {}

    def visit(module: str, stack: list[str]) -> None:
        state[module] = "open"
        for target in sorted(graph.get(module, ())):
            # `import sdt.run.loop` also runs the packages' __init__, which import nothing here
            if state.get(target) == "open":
                found.append(stack[stack.index(target):] + [target])
            elif target not in state:
                visit(target, stack + [target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    return found


def test_every_module_imports_only_lower_layers():
    graph = import_graph(PACKAGE_DIR)
    assert len(graph) > 30
    assert layer_violations(graph) == []


def test_no_import_cycle():
    assert cycles(import_graph(PACKAGE_DIR)) == []


def test_the_check_catches_an_upward_and_a_sideways_import(tmp_path):
    package = tmp_path / "sdt"
    for part in ("core", "symbolic", "neural", "run"):
        (package / part).mkdir(parents=True)
        (package / part / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "core" / "records.py").write_text("def f():\n    from sdt.run import loop\n")
    (package / "run" / "loop.py").write_text("from sdt.core.records import f\n")
    (package / "symbolic" / "block.py").write_text("import sdt.neural.network\n")
    (package / "neural" / "network.py").write_text("")
    violations = layer_violations(import_graph(package))
    assert violations == ["sdt.core.records (layer 0) imports sdt.run.loop (layer 3)",
                          "sdt.symbolic.block (layer 1) imports sdt.neural.network (layer 1)"]
    assert cycles(import_graph(package)) == [["sdt.core.records", "sdt.run.loop", "sdt.core.records"]]


def test_every_part_of_the_package_has_a_layer():
    parts = {path.name.removesuffix(".py") for path in PACKAGE_DIR.iterdir()
             if (path.is_dir() and (path / "__init__.py").exists()) or path.suffix == ".py"}
    assert parts - {"__init__"} == set(LAYERS)


@pytest.mark.parametrize("name", ["main", "controller", "neural_network", "tuning_module", "datasets"])
def test_the_papers_top_level_names_only_point_into_the_package(name):
    """The card's names stay visible; each is an entry into the package and holds no code of its own."""
    tree = ast.parse((PACKAGE_DIR.parent / f"{name}.py").read_text())
    definitions = [node for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))]
    assert definitions == []
    assert any(isinstance(node, ast.ImportFrom) and node.module.startswith("sdt.") for node in tree.body)
