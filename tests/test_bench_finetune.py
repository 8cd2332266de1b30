"""bench/finetune.py records the command that was run, also when started from the command line (argv None)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest


def _load_bench():  # noqa: ANN202 (a module loaded from a file)
    path = Path(__file__).resolve().parents[1] / "bench" / "finetune.py"
    spec = importlib.util.spec_from_file_location("bench_finetune", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_write_results_records_the_command_line_arguments(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    bench = _load_bench()
    row = {"epoch": 1, "step": 10, "miou": 0.5}
    result = {
        "cpu": "x86_64", "capability": "AVX2", "torch": "2", "threads": 2, "pretrain_steps": 5,
        "fine": [row], "scratch": [row], "scratch_final": 0.5, "fine_final": 0.5,
        "fine_steps_to_scratch_final": 10, "scratch_steps": 10,
        "seconds": {"pretrain": 1.0, "finetune": 1.0, "scratch": 1.0},
    }  # fmt: skip
    monkeypatch.setattr(sys, "argv", ["bench/finetune.py", "--root", "/data/Cam Vid", "--write-results"])
    bench.write_results(result, None, tmp_path / "RESULTS.md")
    text = (tmp_path / "RESULTS.md").read_text()
    assert "Command: `python bench/finetune.py --root '/data/Cam Vid' --write-results`." in text
    bench.write_results(result, ["--epochs", "3"], tmp_path / "RESULTS.md")  # replaces the block
    text = (tmp_path / "RESULTS.md").read_text()
    assert "Command: `python bench/finetune.py --epochs 3`." in text and text.count("finetune:start") == 1
