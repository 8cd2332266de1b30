"""The folder tree is the architecture: read every module's imports (statically, with ``ast``) and check that
the lower layers never reach up into the engine, and that the neutral modules import no segkit layer above
them."""

from __future__ import annotations

import ast
from pathlib import Path

import segkit

PACKAGE = Path(segkit.__file__).parent
# The only modules allowed to import segkit.engine: the engine itself, the CLI, and the package root that
# re-exports the Trainer.
ENGINE_USERS = ("engine/", "cli.py", "__init__.py")
# Neutral modules used by every layer: they may import nothing of segkit but each other and the registry.
NEUTRAL = {"checkpoint.py": {"segkit.registry"}, "distributed.py": set(), "logs.py": set(), "registry.py": set()}


def _imports(path: Path) -> set[str]:
    """Absolute names of the segkit modules ``path`` imports (relative imports resolved), at any depth of the file
    (function-level imports count: they run too)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = ["segkit", *path.relative_to(PACKAGE).parent.parts]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            names.add(module)
            names.update(f"{module}.{a.name}" for a in node.names)  # `from segkit import engine`
    return {n for n in names if n == "segkit" or n.startswith("segkit.")}


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_the_import_reader_sees_every_form_of_import(tmp_path: Path) -> None:
    sub = PACKAGE / "models"
    probe = sub / "_layer_probe_tmp.py"
    probe.write_text(
        "import segkit.engine.trainer\nfrom segkit import engine\nfrom ..engine import state\n"
        "def f():\n    from segkit.engine.ema import ModelEMA\n"
    )
    try:
        found = _imports(probe)
    finally:
        probe.unlink()
    assert {"segkit.engine.trainer", "segkit.engine", "segkit.engine.state", "segkit.engine.ema"} <= found


def test_nothing_below_the_engine_imports_it() -> None:
    offenders = []
    for path in _modules():
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.startswith(ENGINE_USERS[0]) or rel in ENGINE_USERS[1:]:
            continue
        bad = sorted(n for n in _imports(path) if n == "segkit.engine" or n.startswith("segkit.engine."))
        if bad:
            offenders.append(f"segkit/{rel}: {', '.join(bad)}")
    assert not offenders, "modules outside segkit/engine and segkit/cli.py import the engine:\n" + "\n".join(offenders)


def test_neutral_modules_import_no_layer_above_them() -> None:
    for name, allowed in NEUTRAL.items():
        found = {n for n in _imports(PACKAGE / name) if n != "segkit"}
        assert found <= allowed, f"segkit/{name} imports {sorted(found - allowed)}"


# The layers, lowest first: a module may import its own layer and those below, never one above (a back-edge).
LAYERS = {
    **dict.fromkeys(("registry", "checkpoint", "distributed", "logs"), 0),  # neutral
    **dict.fromkeys(("datasets", "models", "losses"), 1),  # the families (registries in leaf modules)
    **dict.fromkeys(("metrics", "config"), 2),
    "inference": 3,
    **dict.fromkeys(("tracking", "viz"), 4),
    **dict.fromkeys(("export", "export_instance"), 5),
    "engine": 6,
    **dict.fromkeys(("cli", "__init__", "__main__"), 7),
}


def _module_name(path: Path) -> str:
    parts = ["segkit", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_edges(path: Path, modules: set[str]) -> set[str]:
    """The segkit modules ``path`` imports when it runs (function-level imports too, ``TYPE_CHECKING`` blocks
    not): ``from pkg import sub`` is an edge to the module ``pkg.sub``, ``from pkg import name`` to ``pkg``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    typing_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for stmt in node.body
        for inner in ast.walk(stmt)
    }
    name = _module_name(path)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    edges: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            edges.update(a.name for a in node.names if a.name in modules)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            for alias in node.names:
                target = f"{module}.{alias.name}"
                edges.add(target if target in modules else module)
    return {e for e in edges if e in modules and e != name}


def _graph() -> dict[str, set[str]]:
    paths = {_module_name(p): p for p in _modules()}
    return {name: _runtime_edges(path, set(paths)) for name, path in paths.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each a runtime import cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

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

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_runtime_import_cycle() -> None:
    cycles = _cycles(_graph())
    assert not cycles, "runtime import cycles (function-level imports count):\n" + "\n".join(map(str, cycles))


def test_the_cycle_finder_finds_one() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]] and _cycles({"a": {"b"}, "b": set()}) == []


def test_no_layer_imports_a_layer_above_it() -> None:
    def layer(module: str) -> int:
        parts = module.split(".")
        return LAYERS[parts[1] if len(parts) > 1 else "__init__"]

    back = [f"{a} -> {b}" for a, targets in _graph().items() for b in targets if layer(b) > layer(a)]
    assert not back, "imports of a higher layer (see LAYERS):\n" + "\n".join(sorted(back))


def test_every_top_level_module_has_a_layer() -> None:
    tops = {p.relative_to(PACKAGE).parts[0].removesuffix(".py") for p in _modules()}
    assert tops <= set(LAYERS), f"give these a layer in LAYERS: {sorted(tops - set(LAYERS))}"
