"""torchrun: 2 CPU processes (gloo) with batch B each match 1 process with batch 2B."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from segkit import Trainer
from segkit.checkpoint import load_checkpoint
from segkit.engine.sampling import ResumableSampler
from segkit.engine.training_state import rng_state_for_rank
from tests.engine._nets import TinyNet

ROOT = Path(__file__).resolve().parents[2]


def make_data():
    from segkit.datasets import build_dataset

    return (
        build_dataset("shapes", split="train", num_images=16, image_size=24),
        build_dataset("shapes", split="val", num_images=5, image_size=24),
    )  # 5: uneven shards


def trainer_kwargs():
    return {"epochs": 2, "lr": 0.01, "scheduler": "poly", "seed": 5, "log_every": 1, "device": "cpu"}


def test_torchrun_two_processes_match_one_process(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(ROOT / "tests/engine/ddp_train.py"),
        str(tmp_path / "ddp"),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / "ddp" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world"] for r in ranks] == [2, 2]
    assert not (tmp_path / "ddp" / "rank1").exists()

    torch.manual_seed(0)
    train, val = make_data()
    single = Trainer(TinyNet(), "ce", train, val, batch_size=8, out_dir=tmp_path / "one", **trainer_kwargs())
    metrics = single.fit()
    ddp_state = load_checkpoint(tmp_path / "ddp" / "last.pt")["model"]
    for name, value in single.module.state_dict().items():
        torch.testing.assert_close(ddp_state[name], value, atol=1e-5, rtol=0, msg=name)
    # Validation shards (3 + 2 images) are all-reduced: both ranks report the single-process mIoU.
    for r in ranks:
        assert r["miou"] == pytest.approx(metrics["val/miou"], abs=1e-4)
        assert r["loss"] == pytest.approx(metrics["train/loss"], abs=1e-4)
    # Each rank's own RNG state is in the checkpoint (their streams diverged), and each resumes from its own.
    saved = load_checkpoint(tmp_path / "ddp" / "last.pt")["rng_ranks"]
    digests = [hashlib.sha1(state["torch"].numpy().tobytes()).hexdigest() for state in saved]
    assert digests == [r["rng"] for r in ranks] and digests[0] != digests[1]
    assert rng_state_for_rank({"rng": saved[0], "rng_ranks": saved}, 1, 2) is saved[1]
    assert rng_state_for_rank({"rng": saved[0], "rng_ranks": saved}, 0, 3) is saved[0]  # other world size
    rows = (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()
    assert len([r for r in rows if "val/miou" in r]) == 2  # rank 0 only: one row per epoch


def test_sampler_shards_cover_the_global_batches():
    one = ResumableSampler(10, seed=2)
    shards = [list(ResumableSampler(10, seed=2, rank=r, world_size=2)) for r in (0, 1)]
    full = list(one)
    # Global batch j of 2 ranks x 2 samples is the single process's batch j of 4 samples.
    for j in range(2):
        assert sorted(shards[0][2 * j : 2 * j + 2] + shards[1][2 * j : 2 * j + 2]) == sorted(full[4 * j : 4 * j + 4])
    one.set_position(epoch=1, start=3)
    fresh = ResumableSampler(10, seed=2)
    fresh.set_position(epoch=1)
    assert list(one) == list(fresh)[3:]
    assert list(fresh) != full  # a new order each epoch
    assert sorted(
        list(ResumableSampler(5, False, rank=0, world_size=2, pad=False))
        + list(ResumableSampler(5, False, rank=1, world_size=2, pad=False))
    ) == [0, 1, 2, 3, 4]


def test_cli_train_under_torchrun_prints_once_and_destroys_its_process_group(tmp_path):
    """`segkit train` under torchrun: one rank prints, and the group segkit created is gone when ``main`` returns
    (a gloo group left to interpreter exit can abort the job in its teardown after the results are written)."""
    import yaml

    cfg = {
        "model": {"name": "segnet", "base_width": 4},
        "data": {"name": "shapes", "image_size": 32, "train": {"split": "train", "num_images": 8},
                 "val": {"split": "val", "num_images": 4}},
        "train": {"epochs": 1, "batch_size": 2, "device": "cpu", "out_dir": str(tmp_path / "run")},
    }  # fmt: skip
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(ROOT / "tests/engine/ddp_cli.py"), str(tmp_path / "cfg.yaml"), str(tmp_path)]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    after = [json.loads((tmp_path / f"after_rank{r}.json").read_text()) for r in (0, 1)]
    assert after == [{"status": 0, "initialized": False}] * 2
    assert proc.stdout.count("segkit train: segnet on shapes") == 1, proc.stdout
    assert proc.stdout.count("final val mIoU") == 1, proc.stdout
    assert (tmp_path / "run" / "best.pt").is_file()
