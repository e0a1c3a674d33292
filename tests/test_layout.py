"""The layout's rules, read from the source: imports run one way, and ``inputs/``, ``output/``,
``pipeline/`` and ``cli/`` never import torch."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import resnet_cli

PACKAGE = Path(resnet_cli.__file__).parent
# Lower layers never import higher ones. Records (errors, results, categories, the user's
# config and two small helpers) are the bottom; the entry points (the package's API,
# __main__, the old ray_engine name) the top.
LAYERS = {
    "errors": 0,
    "results": 0,
    "categories": 0,
    "text": 0,
    "atomic": 0,
    "config": 0,
    "inputs": 1,
    "models": 2,
    "runtimes": 3,
    "output": 4,
    "pipeline": 5,
    "cli": 6,
    "__init__": 7,
    "__main__": 7,
    "ray_engine": 7,
}
# No torch here, not even inside a function: the packages that steer the work, and those
# that read inputs and write outputs (torch is the runtimes' and the models' business).
NO_TORCH = ("inputs", "output", "pipeline", "cli")


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        found[".".join(parts)] = path
    return found


def top(name: str) -> str:
    return name.split(".")[0]


def imports_of(name: str, path: Path) -> list[tuple[int, str]]:
    """(line, the package module it names) for every import in the file, at any depth."""
    package = name.split(".")[:-1]  # a package's own __init__ is named pkg.__init__ here
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - (node.level - 1)]
            if node.module:
                found.append((node.lineno, ".".join([*base, *node.module.split(".")])))
            else:  # from . import x: x is a module of the package, or a name in it
                for alias in node.names:
                    found.append((node.lineno, ".".join([*base, alias.name])))
        elif isinstance(node, ast.ImportFrom | ast.Import):
            names = [node.module] if isinstance(node, ast.ImportFrom) else []
            names += [alias.name for alias in getattr(node, "names", [])]
            for imported in names:
                if imported and imported.startswith("resnet_cli."):
                    found.append((node.lineno, imported.removeprefix("resnet_cli.")))
    return found


def test_every_module_has_a_layer() -> None:
    assert set(map(top, modules())) <= set(LAYERS), set(map(top, modules())) - set(LAYERS)


def test_imports_run_one_way() -> None:
    upward = []
    for name, path in modules().items():
        for line, target in imports_of(name, path):
            if target in ("__init__", "") or top(target) == "__version__":
                continue  # the package's version
            if LAYERS[top(target)] > LAYERS[top(name)]:
                upward.append(f"{path.relative_to(PACKAGE)}:{line} imports {target}")
    assert not upward, "\n".join(upward)


def test_the_rule_sees_an_upward_import(tmp_path: Path) -> None:
    """The check above can fail: a runtime that imports the CLI is caught."""
    module = tmp_path / "runtimes" / "bad.py"
    module.parent.mkdir()
    module.write_text("def f():\n    from ..cli import main\n")
    ((line, target),) = imports_of("runtimes.bad", module)
    assert (line, target) == (2, "cli")
    assert LAYERS[top(target)] > LAYERS["runtimes"]


def torch_imports(path: Path) -> list[int]:
    lines = []
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names = [node.module]
        if any(n.split(".")[0] in ("torch", "torchvision", "transformers") for n in names):
            lines.append(node.lineno)
    return lines


def test_inputs_output_pipeline_and_cli_never_import_torch() -> None:
    assert torch_imports(PACKAGE / "runtimes" / "base.py")  # the check sees an import
    found = [
        f"{path.relative_to(PACKAGE)}:{line}"
        for name, path in modules().items()
        if top(name) in NO_TORCH
        for line in torch_imports(path)
    ]
    assert not found, found


def test_the_steering_modules_load_without_torch() -> None:
    """Imported in a fresh interpreter, every module of those packages leaves torch,
    torchvision and transformers unloaded (what keeps --help and the quick start fast)."""
    names = [f"resnet_cli.{n}" for n in modules() if top(n) in NO_TORCH]
    probe = (
        "import importlib, json, sys\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps([m for m in ('torch', 'torchvision', 'transformers') "
        "if m in sys.modules]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    assert len(names) >= 8
    assert json.loads(result.stdout) == []


def import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports, at module level or inside a function
    (``from . import x`` names the package itself or its module ``x``, as ``imports_of``
    reads it; a package's ``__init__`` counts as the package)."""
    names = set(modules())

    def resolve(target: str) -> str | None:
        package = target.rpartition(".")[0]  # a name imported from a package's __init__
        for candidate in (target, f"{target}.__init__", f"{package}.__init__" if package else ""):
            if candidate in names:
                return candidate
        return None

    graph: dict[str, set[str]] = {}
    for name, path in modules().items():
        found = {resolve(target) for _, target in imports_of(name, path)}
        graph[name] = {target for target in found if target is not None and target != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The graph's strongly connected components of more than one module (Tarjan's), each
    sorted: every module in one imports, through the others, every module in it."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles() -> None:
    """No module imports, directly or through others, a module that imports it: counting
    imports inside functions too, which hide a cycle from Python but not from a reader."""
    graph = import_graph()
    assert "runtimes.cuda_graph" in graph["runtimes.build"]  # from . import cuda_graph
    assert len(graph) > 40
    found = cycles(graph)
    assert found == [], "import cycles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_the_cycle_check_sees_a_cycle(tmp_path: Path) -> None:
    """The check above can fail: a cycle through an import inside a function, and one of
    three modules, are found; a chain is not a cycle."""
    module = tmp_path / "runtimes" / "a.py"
    module.parent.mkdir()
    module.write_text("from .b import x\n\ndef f():\n    from . import c\n")
    assert [target for _, target in imports_of("runtimes.a", module)] == [
        "runtimes.b",
        "runtimes.c",
    ]
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"f"}, "f": set()}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"x": {"y"}, "y": {"x"}, "z": set()}) == [["x", "y"]]
    assert cycles({"x": {"y"}, "y": set()}) == []


def merge_leftovers(root: Path) -> list[str]:
    """Files a merge or a patch left behind (``*.orig``, ``*.rej``) under ``root``."""
    return sorted(
        str(path.relative_to(root))
        for pattern in ("*.orig", "*.rej")
        for path in root.rglob(pattern)
    )


def test_no_merge_leftovers_under_src(tmp_path: Path) -> None:
    assert not merge_leftovers(PACKAGE.parent), merge_leftovers(PACKAGE.parent)
    (tmp_path / "pipeline").mkdir()
    (tmp_path / "pipeline" / "ray_job.py.orig").write_text("")
    (tmp_path / "x.py.rej").write_text("")
    assert merge_leftovers(tmp_path) == ["pipeline/ray_job.py.orig", "x.py.rej"]  # it can fail
