"""Trainer(max_minutes=...) with epochs of a steady (faked) time: the plan made from the first epoch and kept by
every re-plan, the re-laid lr schedule, exact resume of a planned run, ``elapsed_s`` in every metrics row, the
config key and the checks of bad values (epochs that drift: test_time_budget_replan.py)."""

from __future__ import annotations

import contextlib
import io
import json
import math
import shutil

import pytest
import torch

from segkit import Trainer
from segkit.checkpoint import load_checkpoint
from segkit.config import ConfigError, config_from_dict
from segkit.engine import time_budget
from segkit.engine.callbacks import Callback
from segkit.engine.finetune import unfreeze_factors
from segkit.engine.optim import build_scheduler, set_schedule_length
from tests.engine._kill import KillAfterStep
from tests.engine._nets import TinyNet

LR, WARMUP, POWER = 0.01, 2, 0.9
STEPS_PER_EPOCH = 3  # 12 images, batch 4
STEP_SECONDS, VAL_SECONDS = 2.0, 1.0  # fake time: each training batch, each validation
EPOCH_SECONDS = STEPS_PER_EPOCH * STEP_SECONDS + VAL_SECONDS  # 7 s
MAX_MINUTES = 0.5  # 30 s: floor(30 / 7) = 4 epochs (5 if validation were not timed)
PLANNED = 4


class FakeClock(Callback):
    """Time that moves only when training does: ``seconds_per_step[epoch]`` per batch, ``VAL_SECONDS`` per
    validation. Installed as ``time_budget.clock``, so every reading the budget takes is deterministic."""

    def __init__(self, seconds_per_step=lambda epoch: STEP_SECONDS, per_read=0.0):
        self.now = 0.0
        self.seconds_per_step = seconds_per_step
        self.per_read = per_read  # > 0: time also passes between any two readings (as real time does)

    def __call__(self):
        self.now += self.per_read
        return self.now

    def on_train_batch_end(self, trainer, outputs):
        self.now += self.seconds_per_step(trainer.epoch)

    def on_validation_end(self, trainer, metrics):
        self.now += VAL_SECONDS


@pytest.fixture(scope="module")
def data():
    from segkit.datasets import build_dataset

    return (
        build_dataset("shapes", split="train", num_images=12, image_size=16),
        build_dataset("shapes", split="val", num_images=2, image_size=16),
    )


def _trainer(out_dir, data, monkeypatch, callbacks=(), clock=None, **kwargs):
    clock = clock or FakeClock()
    monkeypatch.setattr(time_budget, "clock", clock)
    torch.manual_seed(1)
    options = dict(
        epochs=2, batch_size=4, lr=LR, scheduler="poly", warmup_iters=WARMUP, ema=0.8, log_every=1,
        checkpoint_every=2, seed=3, max_minutes=MAX_MINUTES, out_dir=out_dir,
    )  # fmt: skip
    options.update(kwargs)
    return Trainer(TinyNet(dropout=0.3), "ce", data[0], data[1], callbacks=[clock, *callbacks], **options)


def _rows(out_dir):
    return [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]


def _poly_lr(step, total):
    """The lr of optimizer step ``step`` (0-based) of a poly schedule with warm-up over ``total`` steps."""
    warm = min(1.0, (step + 1) / WARMUP)
    return LR * warm * (1.0 - min(step, total) / total) ** POWER


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data):
    """The uninterrupted budget run (module-scoped: the resume tests compare against it); what it printed is
    kept as ``printed``."""
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(printed):
        trainer = _trainer(tmp_path_factory.mktemp("ref"), data, mp)
        trainer.fit()
    trainer.printed = printed.getvalue()
    return trainer


@pytest.fixture(scope="module")
def killed(tmp_path_factory, data):
    """The same run killed at step 8 (epoch 3 of 4, after its 2nd batch); last.pt of step 8 holds the plan made
    at step 3. Tests resume copies of this folder."""
    out = tmp_path_factory.mktemp("killed")
    with pytest.MonkeyPatch.context() as mp, pytest.raises(KeyboardInterrupt):
        _trainer(out, data, mp, [KillAfterStep(8)]).fit()
    return out


@pytest.fixture(scope="module")
def resumed(tmp_path_factory, data, killed):
    """The killed run resumed with ``fit(resume="last")`` (a fresh clock: this session starts again at 0)."""
    out = tmp_path_factory.mktemp("resumed") / "run"
    shutil.copytree(killed, out)
    with pytest.MonkeyPatch.context() as mp:
        trainer = _trainer(out, data, mp)
        trainer.final = trainer.fit(resume="last")
    return trainer


def test_budget_run_plans_epochs_from_the_first_epoch_and_stops_at_the_plan(reference, capsys):
    rows = _rows(reference.out_dir)
    epoch_rows = [r for r in rows if "val/miou" in r]
    # epochs=2 only laid the first epoch's schedule: the plan (4 epochs) decides where the run ends.
    assert [r["epoch"] for r in epoch_rows] == list(range(PLANNED))
    assert reference.global_step == PLANNED * STEPS_PER_EPOCH
    # Each epoch takes 7 fake seconds (validation included); the run ends within one epoch of the budget.
    assert [r["elapsed_s"] for r in epoch_rows] == [7.0, 14.0, 21.0, 28.0]
    assert 0 <= MAX_MINUTES * 60 - epoch_rows[-1]["elapsed_s"] < EPOCH_SECONDS
    assert reference.time_budget.plan["epochs"] == PLANNED
    assert reference.time_budget.plan["total_steps"] == PLANNED * STEPS_PER_EPOCH
    params = json.loads((reference.out_dir / "params.json").read_text())
    assert params["resolved"]["time_plan"]["epochs"] == PLANNED
    # The run ends as any other: a validation, then last.pt and best.pt of the planned last epoch.
    assert load_checkpoint(reference.out_dir / "last.pt")["epoch"] == PLANNED
    assert (reference.out_dir / "best.pt").is_file()


def test_budget_run_lr_follows_the_relaid_schedule_to_its_final_value(reference):
    # The row of step k holds the lr of step k + 1 (0-based step k): the provisional schedule (epochs=2, 6 steps)
    # during the first epoch, from then on the same shape over the planned 12 steps.
    lrs = {r["step"]: r["train/lr"] for r in _rows(reference.out_dir) if "train/lr" in r}
    total = PLANNED * STEPS_PER_EPOCH
    assert sorted(lrs) == list(range(1, total + 1))
    for step, lr in lrs.items():
        provisional = step <= STEPS_PER_EPOCH  # steps 1-3 were logged before the plan (at epoch end)
        expected = _poly_lr(step, 2 * STEPS_PER_EPOCH if provisional else total)
        assert lr == pytest.approx(expected, rel=1e-12, abs=1e-15), step
    # The last step trained with the schedule's last non-zero lr, and the schedule ends at 0 (poly's end value).
    assert lrs[total - 1] == pytest.approx(LR * (1 / total) ** POWER, rel=1e-12)
    assert lrs[total] == 0.0


def test_plan_line_is_printed_once(reference):
    # Epochs of a steady 7 s keep the plan at every re-plan (after epoch 2: 2 + floor(16 / 7) = 4; after 3:
    # 3 + 1), and a plan that holds prints nothing: the first plan is the only line.
    lines = [line for line in reference.printed.splitlines() if line.startswith("max_minutes")]
    assert lines == ["max_minutes=0.5: first epoch took 7.0 s; planning 4 epochs (schedule over 12 steps)"]


def test_resume_after_the_plan_equals_the_uninterrupted_run(killed, resumed, reference):
    state = load_checkpoint(killed / "last.pt")
    assert (state["epoch"], state["batches_done"], state["global_step"]) == (2, 2, 8)
    assert state["time_budget"]["plan"]["epochs"] == PLANNED
    assert resumed.global_step == reference.global_step
    for (name, x), y in zip(resumed.module.state_dict().items(), reference.module.state_dict().values()):
        assert torch.equal(x, y), name
    for x, y in zip(resumed.ema.state_dict().values(), reference.ema.state_dict().values()):
        assert torch.equal(x, y)

    def untimed(rows):  # times (elapsed_s, images_per_s) are not compared
        return [{k: v for k, v in r.items() if k not in ("elapsed_s", "train/images_per_s")} for r in rows]

    assert untimed(_rows(resumed.out_dir)) == untimed(_rows(reference.out_dir))
    ref_final = [r for r in _rows(reference.out_dir) if "val/miou" in r][-1]
    final = resumed.final
    assert final["val/miou"] == ref_final["val/miou"] and final["train/loss"] == ref_final["train/loss"]


def test_elapsed_s_in_every_row_continues_after_resume(killed, resumed):
    stored = load_checkpoint(killed / "last.pt")["time_budget"]["elapsed"]
    # Step 8's row and its checkpoint: 7 batches (14 s) and 2 validations (2 s) of fake time.
    assert stored == 16.0
    rows = _rows(resumed.out_dir)
    elapsed = [r["elapsed_s"] for r in rows]  # a KeyError here: a row without elapsed_s
    assert elapsed == sorted(elapsed)
    assert {"train/lr" in r for r in rows} == {True, False}  # step rows and epoch rows both checked
    # The resumed session (its clock restarted at 0) continues from the checkpoint's 16 s, not from 0.
    first_resumed = next(r for r in rows if r["step"] == 9)
    assert first_resumed["elapsed_s"] == stored
    assert rows[-1]["elapsed_s"] == stored + 4 * STEP_SECONDS + 2 * VAL_SECONDS  # 4 more batches, 2 validations


def test_elapsed_s_never_goes_back_after_resuming_an_end_of_epoch_checkpoint(tmp_path, data, monkeypatch):
    # Every clock reading takes 0.25 s, so the epoch's row (logged after its checkpoint) would be later than the
    # elapsed time the checkpoint stored, unless both hold the epoch's end reading. Killed at step 7: the last
    # checkpoint is the end of epoch 2 (step 6), whose row the resumed run keeps.
    with pytest.raises(KeyboardInterrupt):
        _trainer(tmp_path, data, monkeypatch, [KillAfterStep(7)], clock=FakeClock(per_read=0.25)).fit()
    state = load_checkpoint(tmp_path / "last.pt")
    assert (state["global_step"], state["batches_done"]) == (6, 0)
    _trainer(tmp_path, data, monkeypatch, clock=FakeClock(per_read=0.25)).fit(resume="last")
    rows = _rows(tmp_path)
    epoch_two = next(r for r in rows if r.get("epoch") == 1)
    assert epoch_two["elapsed_s"] == state["time_budget"]["elapsed"]
    elapsed = [r["elapsed_s"] for r in rows]
    assert elapsed == sorted(elapsed)


def test_a_run_killed_in_its_first_epoch_times_that_epoch_over_both_sessions(tmp_path, data, monkeypatch, capsys):
    # last.pt of step 2 stores 2 s (batch 1; batch 2's time passed after it and is lost with the kill). The
    # resumed session adds batch 3 (2 s) and the validation (1 s): the first epoch took 2 + 2 + 1 = 5 s, and
    # 1 + floor((30 - 5) / 5) = 6 epochs are planned (timing only this session's 3 s would plan 9). The next
    # epoch takes the usual 7 s (12 s in all, 18 s left): the re-plan after it makes 2 + 2 = 4 epochs.
    with pytest.raises(KeyboardInterrupt):
        _trainer(tmp_path, data, monkeypatch, [KillAfterStep(2)]).fit()
    assert load_checkpoint(tmp_path / "last.pt")["time_budget"]["plan"] is None
    resumed = _trainer(tmp_path, data, monkeypatch)
    resumed.fit(resume="last")
    out = capsys.readouterr().out
    assert "first epoch took 5.0 s; planning 6 epochs" in out
    assert "epochs take 7.0 s (epoch 2), 18.0 s left after epoch 2: planning 4 epochs instead of 6" in out
    assert resumed.global_step == 4 * STEPS_PER_EPOCH


def test_an_unfreeze_past_the_plan_is_reported(tmp_path, data, monkeypatch, capsys):
    trainer = _trainer(tmp_path, data, monkeypatch, freeze="body", unfreeze_at=PLANNED)  # epoch 5 of a 4-epoch plan
    trainer.fit()
    assert "unfreeze_at=4 is not reached in 4 epochs: body stay frozen" in capsys.readouterr().out
    assert trainer.frozen == ["body"]


def test_resume_of_a_budget_run_without_max_minutes_trains_to_epochs(tmp_path, data, monkeypatch, capsys, killed):
    shutil.copytree(killed, tmp_path, dirs_exist_ok=True)
    resumed = _trainer(tmp_path, data, monkeypatch, max_minutes=None, epochs=3)
    resumed.fit(resume="last")
    assert resumed.global_step == 3 * STEPS_PER_EPOCH
    assert "time plan (4 epochs) is not followed" in capsys.readouterr().out


def test_relaid_schedule_keeps_warmup_and_unfreeze_factors():
    weights = [torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))]
    optimizer = torch.optim.SGD([{"params": [weights[0]], "frozen": False}, {"params": [weights[1]], "frozen": True}],
                                lr=1.0)  # fmt: skip
    factors = unfreeze_factors(optimizer.param_groups, 6, 4)  # the frozen group joins at step 6, 4-step ramp
    scheduler = build_scheduler("cosine", optimizer, 10, warmup_iters=3, group_factors=factors)
    for _ in range(4):
        optimizer.step()
        scheduler.step()
    assert set_schedule_length(scheduler, 40)
    assert "total_iters" not in scheduler.state_dict()  # the plan owns the length, not the scheduler's state
    seen = [[g["lr"] for g in optimizer.param_groups]]
    for _ in range(36):
        optimizer.step()
        scheduler.step()
        seen.append([g["lr"] for g in optimizer.param_groups])
    for offset, (trainable, frozen) in enumerate(seen):
        i = 4 + offset
        shape = min(1.0, (i + 1) / 3) * 0.5 * (1 + math.cos(math.pi * i / 40))
        ramp = 0.0 if i < 6 else min(1.0, (i - 6 + 1) / 4)
        assert trainable == pytest.approx(shape, abs=1e-15), i
        assert frozen == pytest.approx(shape * ramp, abs=1e-15), i
    assert seen[-1][0] == pytest.approx(0.0, abs=1e-15)  # cosine's end value at the new length
    assert not set_schedule_length(torch.optim.lr_scheduler.StepLR(optimizer, 2), 10)  # not segkit's: left alone


def test_plan_epochs_formula():
    assert time_budget.plan_epochs(600.0, 61.2, 61.2, 1) == 9  # floor(600 / 61.2)
    assert time_budget.plan_epochs(30.0, 45.0, 45.0, 1) == 1  # the first epoch alone was over budget
    assert time_budget.plan_epochs(100.0, 40.0, 10.0, 3) == 9  # planned later: 3 done + 60 s / 10 s
    assert time_budget.plan_epochs(100.0, 95.0, 10.0, 3) == 4  # 5 s left, less than an epoch: one more
    assert time_budget.plan_epochs(100.0, 100.0, 10.0, 3) == 3  # spent exactly: stop
    assert time_budget.plan_epochs(30.0, 25.0, 25.0, 1) == 2  # a first epoch under the budget gets a second


def test_config_key_reaches_the_trainer(tmp_path):
    cfg = config_from_dict(
        {
            "model": {"name": "unet", "encoder": "resnet18", "encoder_weights": None, "decoder_channels": [8] * 5},
            "data": {"name": "shapes", "image_size": 32, "train": {"num_images": 4}, "val": {"num_images": 2}},
            "train": {"max_minutes": 2, "out_dir": str(tmp_path)},
        }
    )
    assert cfg.train.max_minutes == 2.0
    assert Trainer.from_config(cfg).time_budget.max_minutes == 2.0


@pytest.mark.parametrize("value", [0, -1.5, "10", True, float("nan"), float("inf")])
def test_bad_max_minutes_names_the_field(tmp_path, data, value):
    with pytest.raises(ValueError, match="max_minutes"):
        Trainer(TinyNet(), "ce", data[0], max_minutes=value, out_dir=tmp_path)
    raw = {"model": "unet", "data": "shapes", "train": {"max_minutes": value}}
    with pytest.raises(ConfigError, match="train.max_minutes"):
        config_from_dict(raw, validate=False)


@pytest.mark.slow  # about 20 s: torchrun starts 2 processes
def test_torchrun_ranks_agree_on_the_plan(tmp_path):
    """Budget 120 s. Rank 0's epochs take 4 * 2 + 1 = 9 s; rank 1's 4 * 4 + 1 = 17 s, then 4 * 5 + 1 = 21 s.
    Alone, rank 0 would plan 1 + floor(111 / 9) = 13 epochs and keep them; rank 1 would plan 1 + floor(103 / 17)
    = 7, then after epoch 2 (38 s, 82 s left, 21 s epochs) 2 + 3 = 5 (and the job would hang). Both plan from the
    slowest rank's readings: 7 epochs, then 5 (kept after epochs 3 and 4: 3 + 2, 4 + 1), ending at 101 s."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(root)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(root / "tests/engine/ddp_time_budget.py"), str(tmp_path)]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240, cwd=root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0] == ranks[1] == {"planned": 5, "epochs": 5, "steps": 20}
    assert "first epoch took 17.0 s; planning 7 epochs" in proc.stdout
    assert "epochs take 21.0 s (epoch 2), 82.0 s left after epoch 2: planning 5 epochs instead of 7" in proc.stdout
    # Epoch rows hold the agreed (slowest rank's) reading.
    assert [r["elapsed_s"] for r in _rows(tmp_path) if "val/miou" in r] == [17.0, 38.0, 59.0, 80.0, 101.0]
