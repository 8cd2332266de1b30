"""torchrun: a 2-process run cut in the middle of an epoch and resumed logs the epoch's train/loss of the
uninterrupted run (the partial epoch loss of every rank is in the checkpoint, restored once)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from segkit.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[2]


def _epoch_rows(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if "val/miou" in r]


def test_torchrun_mid_epoch_resume_logs_the_uninterrupted_epoch_loss(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(ROOT / "tests/engine/ddp_resume.py"), str(tmp_path)]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "resuming from" in proc.stdout and "batch 2" in proc.stdout  # in the middle of epoch 2

    full, resumed = _epoch_rows(tmp_path / "full"), _epoch_rows(tmp_path / "cut")
    assert [r["epoch"] for r in full] == [r["epoch"] for r in resumed] == [0, 1]
    for a, b in zip(full, resumed):
        assert b["train/loss"] == pytest.approx(a["train/loss"], abs=1e-6), a["epoch"]
    # The resumed run is the uninterrupted one, weights included.
    ref, got = (load_checkpoint(tmp_path / run / "last.pt")["model"] for run in ("full", "cut"))
    for name, value in ref.items():
        torch.testing.assert_close(got[name], value, atol=1e-6, rtol=0, msg=name)
