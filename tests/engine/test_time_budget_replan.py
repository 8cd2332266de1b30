"""Trainer(max_minutes=...) re-planned at every epoch's end: epochs that become slower or faster than the first
(fake clock) move the planned end, so the run ends within one epoch of the budget with its lr schedule at its
final value; a spent budget stops the run; a resume in the middle of such a run equals the uninterrupted run.

Every expected plan below is worked out by hand in the comments from the fake times (not from the code under
test), and every expected lr from the poly formula of ``build_scheduler``'s docstring."""

from __future__ import annotations

import contextlib
import io
import json

import pytest
import torch

from segkit import Trainer
from segkit.checkpoint import load_checkpoint
from segkit.engine import time_budget
from segkit.engine.callbacks import Callback
from tests.engine._kill import KillAfterStep
from tests.engine._nets import TinyNet

LR, WARMUP, POWER = 0.01, 2, 0.9
PROVISIONAL_EPOCHS = 2  # Trainer(epochs=2): the schedule's length during the first epoch only
STEPS = 3  # optimizer steps per epoch: 12 images, batch 4
VAL_SECONDS = 1.0


class StepClock(Callback):
    """Fake time: ``seconds_per_step(epoch)`` per training batch (0-based epoch), ``VAL_SECONDS`` per validation.

    A batch's time passes inside its training step (``ClockedTrainer``), before the checkpoint written after
    the step: a kill right after a step loses no time, so the resumed run reads the clock exactly as the
    uninterrupted one did (with real time, what passed between the checkpoint and the kill is lost)."""

    def __init__(self, seconds_per_step):
        self.now = 0.0
        self.seconds_per_step = seconds_per_step

    def __call__(self):
        return self.now

    def on_validation_end(self, trainer, metrics):
        self.now += VAL_SECONDS


class ClockedTrainer(Trainer):
    """Moves the installed ``StepClock`` by one batch's time at each training step."""

    def training_step(self, batch):
        clock = time_budget.clock
        clock.now += clock.seconds_per_step(self.epoch)
        return super().training_step(batch)


class PlanLog(Callback):
    """Records, at each epoch's end (after the re-plan), the epochs planned and the lr the next step uses."""

    def __init__(self):
        self.seen = []

    def on_epoch_end(self, trainer, metrics):
        self.seen.append((trainer.epoch, trainer.epochs, trainer.optimizer.param_groups[0]["lr"]))


def seconds(first, later):
    """Seconds per step: ``first`` in the first epoch, ``later`` after it."""
    return lambda epoch: first if epoch == 0 else later


@pytest.fixture(scope="module")
def data():
    from segkit.datasets import build_dataset

    return (
        build_dataset("shapes", split="train", num_images=12, image_size=16),
        build_dataset("shapes", split="val", num_images=2, image_size=16),
    )


def _run(out_dir, data, step_seconds, max_minutes, callbacks=(), resume=None, checkpoint_every=1):
    """Fit a budgeted run under a fresh ``StepClock``; return the trainer (``.log``: its PlanLog, ``.printed``:
    its stdout)."""
    clock, log = StepClock(step_seconds), PlanLog()
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(printed):
        mp.setattr(time_budget, "clock", clock)
        torch.manual_seed(1)
        trainer = ClockedTrainer(
            TinyNet(dropout=0.3), "ce", data[0], data[1], epochs=PROVISIONAL_EPOCHS, batch_size=4, lr=LR,
            scheduler="poly", warmup_iters=WARMUP, ema=0.8, log_every=1, checkpoint_every=checkpoint_every,
            seed=3, max_minutes=max_minutes, out_dir=out_dir, callbacks=[clock, log, *callbacks],
        )  # fmt: skip
        trainer.log, trainer.printed = log, printed
        trainer.fit(resume=resume)
    return trainer


def _rows(out_dir):
    return [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]


def _poly_lr(step, total):
    """The lr after ``step`` optimizer steps (the lr of 0-based step ``step``) of a poly schedule over ``total``."""
    warm = min(1.0, (step + 1) / WARMUP)
    return LR * warm * (1.0 - min(step, total) / total) ** POWER


def _check_budget_run(trainer, plans, budget_s):
    """The run followed ``plans`` (the epochs planned at each epoch's end, worked out by the test), ended within
    one epoch of ``budget_s``, and every lr is the poly schedule laid over the plan in force at that step,
    up to the schedule's final lr at the last step."""
    epochs = plans[-1]
    total = epochs * STEPS
    assert [planned for _, planned, _ in trainer.log.seen] == plans
    assert trainer.epoch == epochs and trainer.global_step == total
    epoch_rows = [r for r in _rows(trainer.out_dir) if "val/miou" in r]
    assert [r["epoch"] for r in epoch_rows] == list(range(epochs))
    end = epoch_rows[-1]["elapsed_s"]
    last_epoch = end - epoch_rows[-2]["elapsed_s"]
    assert abs(end - budget_s) < last_epoch, (end, budget_s, last_epoch)
    # Row k holds the lr after step k; the steps of epoch j (1-based) ran under the plan made after epoch j - 1
    # (the provisional epochs=2 during the first epoch).
    in_force = [PROVISIONAL_EPOCHS, *plans]
    lrs = {r["step"]: r["train/lr"] for r in _rows(trainer.out_dir) if "train/lr" in r}
    assert sorted(lrs) == list(range(1, total + 1))
    for step, lr in lrs.items():
        assert lr == pytest.approx(_poly_lr(step, in_force[(step - 1) // STEPS] * STEPS), rel=1e-12, abs=1e-15), step
    # Right after each plan the optimizer holds the new curve's lr for the next step (update_lr).
    for done, planned, lr in trainer.log.seen:
        if done < epochs:
            assert lr == pytest.approx(_poly_lr(done * STEPS, planned * STEPS), rel=1e-12), done
    # The last step trained at the schedule's last non-zero lr over ``total`` steps, and the schedule ended at its
    # final value: poly's factor (1 - t) ** power is 0 at t = 1.
    assert lrs[total - 1] == pytest.approx(LR * (1 / total) ** POWER, rel=1e-12)
    assert lrs[total] == LR * (1.0 - 1.0) ** POWER == 0.0
    return epoch_rows


def test_epochs_slower_than_the_first_shorten_the_plan_and_the_run_ends_at_its_final_lr(tmp_path, data):
    # Budget 60 s. Epoch 1: 3 * 2 + 1 = 7 s -> 1 + floor(53 / 7) = 8 epochs. Later epochs 3 * 3 + 1 = 10 s.
    # After epoch 2 (17 s): mean of the later epochs 10 s, 43 s left -> 2 + 4 = 6; after 3, 4, 5 (27, 37, 47 s):
    # 3 + 3, 4 + 2, 5 + 1 = 6 each; epoch 6 ends at 57 s, 3 s under the budget, the schedule at its end.
    trainer = _run(tmp_path, data, seconds(2.0, 3.0), max_minutes=1.0)
    rows = _check_budget_run(trainer, [8, 6, 6, 6, 6, 6], 60.0)
    assert [r["elapsed_s"] for r in rows] == [7.0, 17.0, 27.0, 37.0, 47.0, 57.0]
    # One line for the first plan and one for the change, none while the plan holds.
    lines = [line for line in trainer.printed.getvalue().splitlines() if line.startswith("max_minutes")]
    assert lines == [
        "max_minutes=1: first epoch took 7.0 s; planning 8 epochs (schedule over 24 steps)",
        "max_minutes=1: epochs take 10.0 s (epoch 2), 43.0 s left after epoch 2: planning 6 epochs instead of 8 "
        "(schedule over 18 steps)",
    ]
    plan = json.loads((tmp_path / "params.json").read_text())["resolved"]["time_plan"]
    assert (plan["epochs"], plan["total_steps"], plan["replanned_after"]) == (6, 18, 2)


def test_epochs_faster_than_the_first_lengthen_the_plan_and_the_run_ends_at_its_final_lr(tmp_path, data):
    # Budget 60 s. Epoch 1: 7 s -> 8 epochs. Later epochs 3 * 1 + 1 = 4 s. After epoch 2 (11 s): 49 s left,
    # 2 + floor(49 / 4) = 14; after epoch k (7 + 4 (k - 1) s) k + floor((57 - 4 k) / 4) = 14 up to epoch 13
    # (55 s, 5 s left: one more); epoch 14 ends at 59 s.
    trainer = _run(tmp_path, data, seconds(2.0, 1.0), max_minutes=1.0)
    rows = _check_budget_run(trainer, [8] + [14] * 13, 60.0)
    assert rows[-1]["elapsed_s"] == 59.0


def test_an_epoch_slower_near_the_end_gets_one_more_epoch_to_reach_the_final_lr(tmp_path, data):
    # Budget 30 s. Epoch 1: 7 s -> 1 + floor(23 / 7) = 4. Epoch 2: 3 * 6 + 1 = 19 s, ending at 26 s: 4 s left,
    # less than an epoch. Stopping there would leave the schedule (laid over 4 epochs) half-way; one more epoch
    # ends it at its final lr, at 45 s: 15 s past the budget, less than that epoch (19 s).
    trainer = _run(tmp_path, data, seconds(2.0, 6.0), max_minutes=0.5)
    rows = _check_budget_run(trainer, [4, 3, 3], 30.0)
    assert rows[-1]["elapsed_s"] == 45.0


def test_a_spent_budget_stops_the_run_at_that_epoch(tmp_path, data):
    # Budget 30 s. Epoch 1: 7 s -> 4 epochs. Epoch 2: 3 * 10 + 1 = 31 s, ending at 38 s: the budget is spent,
    # the run stops after epoch 2 (the plan becomes 2) and says so. Its schedule, laid over 4 epochs, stops
    # half-way: the documented cost of an epoch this much slower than the estimate.
    trainer = _run(tmp_path, data, seconds(2.0, 10.0), max_minutes=0.5)
    assert [planned for _, planned, _ in trainer.log.seen] == [4, 2]
    assert trainer.epoch == 2 and trainer.time_budget.plan["epochs"] == 2
    assert [r["epoch"] for r in _rows(tmp_path) if "val/miou" in r] == [0, 1]
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 2
    assert "the budget (30.0 s) is spent after epoch 2 (38.0 s): stopping here, not at the planned 4" in (
        trainer.printed.getvalue()
    )
    lrs = {r["step"]: r["train/lr"] for r in _rows(tmp_path) if "train/lr" in r}
    assert lrs[6] == pytest.approx(_poly_lr(6, 12), rel=1e-12) and lrs[6] > 0


def test_a_first_epoch_past_the_budget_is_the_whole_run(tmp_path, data):
    # Budget 6 s, first epoch 7 s: spent at once, no second epoch.
    trainer = _run(tmp_path, data, seconds(2.0, 2.0), max_minutes=0.1)
    assert trainer.epoch == 1 and trainer.time_budget.plan["epochs"] == 1
    assert "first epoch took 7.0 s, 7.0 s in all: the budget (6.0 s) is spent, stopping after it" in (
        trainer.printed.getvalue()
    )


@pytest.fixture(scope="module")
def slower_reference(tmp_path_factory, data):
    """The uninterrupted run of the slower-epochs test (plans 8, then 6 from epoch 2's end)."""
    return _run(tmp_path_factory.mktemp("slower"), data, seconds(2.0, 3.0), max_minutes=1.0)


@pytest.mark.parametrize(
    "kill_at",
    [
        5,  # epoch 2, before the first re-plan: the resumed run makes it from the stored first-plan reading
        8,  # epoch 3, after the plan went from 8 to 6: the resumed run continues that plan and its schedule
    ],
)
def test_resume_inside_a_replanned_run_equals_the_uninterrupted_run(tmp_path, data, slower_reference, kill_at):
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        _run(out, data, seconds(2.0, 3.0), max_minutes=1.0, callbacks=[KillAfterStep(kill_at)])
    assert load_checkpoint(out / "last.pt")["global_step"] == kill_at
    resumed = _run(out, data, seconds(2.0, 3.0), max_minutes=1.0, resume="last")
    reference = slower_reference
    # The same plans from the resumed epoch on, the same plan, steps and epochs at the end.
    assert resumed.log.seen == reference.log.seen[-len(resumed.log.seen) :]
    assert resumed.time_budget.plan == reference.time_budget.plan
    assert (resumed.epoch, resumed.global_step) == (reference.epoch, reference.global_step) == (6, 18)
    for (name, x), y in zip(resumed.module.state_dict().items(), reference.module.state_dict().values()):
        assert torch.equal(x, y), name
    for x, y in zip(resumed.ema.state_dict().values(), reference.ema.state_dict().values()):
        assert torch.equal(x, y)

    def untimed(rows):  # images_per_s is real time; elapsed_s is the fake clock's and must match
        return [{k: v for k, v in r.items() if k != "train/images_per_s"} for r in rows]

    assert untimed(_rows(out)) == untimed(_rows(reference.out_dir))


def test_resume_with_another_max_minutes_continues_the_stored_plan(tmp_path, data, slower_reference):
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, data, seconds(2.0, 3.0), max_minutes=1.0, callbacks=[KillAfterStep(5)])
    # Resumed with 5 minutes, the re-plan after epoch 2 still uses the checkpoint's 60 s: 6 epochs, not 2 + 28.
    resumed = _run(tmp_path, data, seconds(2.0, 3.0), max_minutes=5.0, resume="last")
    assert resumed.time_budget.plan == slower_reference.time_budget.plan
    assert resumed.global_step == 18
    assert "continuing the checkpoint's plan of 8 epochs for max_minutes=1; max_minutes=5 is not used" in (
        resumed.printed.getvalue()
    )
