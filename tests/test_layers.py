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
