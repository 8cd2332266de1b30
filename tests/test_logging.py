"""Library code logs (issue 29 item 7): segkit's messages go through ``logging`` under "segkit", print as before by
default (INFO to stdout, warnings to stderr), and a user silences or redirects them as with any library."""

import ast
import logging
import subprocess
import sys
from pathlib import Path

import segkit
from segkit import Trainer
from tests.engine._nets import TinyNet


def _fit(tmp_path, tiny_shapes):
    Trainer(TinyNet(width=4), "ce", tiny_shapes("train", 4, 16), tiny_shapes("val", 2, 16), epochs=1, batch_size=4,
            out_dir=tmp_path).fit()  # fmt: skip


def test_messages_print_by_default_and_a_user_can_silence_them(tmp_path, tiny_shapes, capsys, monkeypatch):
    _fit(tmp_path / "a", tiny_shapes)
    assert "epoch 1/1" in capsys.readouterr().out  # the epoch line, printed through the "segkit" logger
    logger = logging.getLogger("segkit")
    logger.setLevel(logging.WARNING)  # what a user writes to silence segkit
    try:
        _fit(tmp_path / "b", tiny_shapes)
    finally:
        logger.setLevel(logging.INFO)
    assert capsys.readouterr().out == ""


def test_a_user_handler_receives_segkit_records(tmp_path, tiny_shapes, monkeypatch):
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    logger = logging.getLogger("segkit")
    monkeypatch.setattr(logger, "handlers", [Keep()])
    _fit(tmp_path, tiny_shapes)
    assert any(r.name == "segkit.engine.trainer" and "epoch 1/1" in r.getMessage() for r in records)


def test_library_code_does_not_print():
    root = Path(segkit.__file__).parent
    allowed = {"cli.py", "viz/report.py"}  # the command line and the report writer print by design
    offenders = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel in allowed:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
                offenders.append(f"segkit/{rel}:{node.lineno}")
    assert not offenders, "print( in library code (use logging.getLogger(__name__)): " + ", ".join(offenders)


def test_the_cli_still_prints(tmp_path):
    done = subprocess.run([sys.executable, "-m", "segkit.cli", "list", "losses"], capture_output=True, text=True)
    assert done.returncode == 0 and "ce" in done.stdout
