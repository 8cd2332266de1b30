"""kill -9 of `segkit train` at different steps, then `--resume last`: bit-identical to a run never interrupted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from segkit.checkpoint import load_checkpoint
from segkit.cli import main

ROOT = Path(__file__).resolve().parents[2]
EPOCHS, STEPS_PER_EPOCH = 3, 6
CONFIG = {
    # A registered model that is cheap at 32 px (VGG16-BN layout, widths 4..32), so no test registration is needed.
    "model": {"name": "segnet", "base_width": 4},
    "data": {
        "name": "shapes",
        "image_size": 32,
        "train": {"split": "train", "num_images": 4 * STEPS_PER_EPOCH},
        "val": {"split": "val", "num_images": 4},
    },
    "train": {"epochs": EPOCHS, "batch_size": 4, "lr": 0.01, "log_every": 1, "seed": 7, "device": "cpu"},
}


@pytest.fixture
def one_thread():
    """Kernels reduce in the same order in this process as in the 1-thread subprocesses (bitwise comparison)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _steps_logged(run: Path) -> int:
    try:
        return sum('"train/lr"' in line for line in (run / "metrics.jsonl").read_text().splitlines())
    except FileNotFoundError:
        return 0


def _rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_kill_9_at_two_steps_then_resume_last_is_bit_identical(tmp_path, one_thread, watchdog):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(CONFIG))
    kill_at = {"early": 2, "second_epoch": STEPS_PER_EPOCH + 3}  # kill once this many steps are logged
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "NO_ALBUMENTATIONS_UPDATE": "1"}
    procs = {}
    for name in kill_at:  # both runs at once: the two cores import torch in parallel
        cmd = [sys.executable, "-m", "segkit.cli", "train", "--config", str(cfg),
               "--set", "train.checkpoint_every=1", "--set", f"train.out_dir={tmp_path / name}"]  # fmt: skip
        with open(tmp_path / f"{name}.log", "wb") as log:  # a file, not a pipe nobody reads while it runs
            procs[name] = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    deadline, killed = time.monotonic() + 100, set()
    while any(p.poll() is None for p in procs.values()) and time.monotonic() < deadline:
        for name, p in procs.items():
            if p.poll() is None and _steps_logged(tmp_path / name) >= kill_at[name]:
                os.kill(p.pid, signal.SIGKILL)
                p.wait()
                killed.add(name)
        time.sleep(0.005)
    for name, p in procs.items():
        if p.poll() is None:  # stuck before reaching its step: stop it, and fail below
            p.kill()
        output = (tmp_path / f"{name}.log").read_text()[-2000:]
        assert name in killed and p.wait() == -signal.SIGKILL, f"{name}: not killed at its step: {output}"

    # A row torn by the kill (as if it died inside a write) must not break the resume either.
    with open(tmp_path / "early" / "metrics.jsonl", "a") as fh:
        fh.write('{"step": 3, "train/lo')

    reference = tmp_path / "reference"
    assert main(["train", "--config", str(cfg), "--set", f"train.out_dir={reference}"]) == 0
    want = load_checkpoint(reference / "last.pt")
    ref_rows = _rows(reference)
    for name in kill_at:
        run = tmp_path / name
        killed_at = load_checkpoint(run / "last.pt")["global_step"]
        assert 0 < killed_at < EPOCHS * STEPS_PER_EPOCH
        assert main(["train", "--config", str(cfg), "--set", f"train.out_dir={run}", "--resume", "last"]) == 0
        got = load_checkpoint(run / "last.pt")
        assert got["global_step"] == want["global_step"] == EPOCHS * STEPS_PER_EPOCH
        for key, value in want["model"].items():
            assert torch.equal(got["model"][key], value), f"{name}: {key} differs"
        rows = _rows(run)
        assert [r["step"] for r in rows if "train/lr" in r] == list(range(1, EPOCHS * STEPS_PER_EPOCH + 1))
        assert [r["epoch"] for r in rows if "val/miou" in r] == list(range(EPOCHS))
        # Every logged loss equals the uninterrupted run's, so the resumed steps saw the same batches.
        assert [r.get("train/loss") for r in rows] == [r.get("train/loss") for r in ref_rows]
