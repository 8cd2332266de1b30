"""A wall-clock budget for a run (``Trainer(max_minutes=...)``): the first epoch is timed, the number of epochs
and the learning-rate schedule are planned from it once, and the plan is stored in checkpoints so a resumed run
follows it exactly. Also keeps ``elapsed_s``, the wall seconds of training across resumes."""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

import torch

from segkit.engine.optim import set_schedule_length

if TYPE_CHECKING:
    from segkit.engine.trainer import Trainer

__all__ = ["TimeBudget", "check_max_minutes", "clock", "plan_epochs"]


def clock() -> float:
    """Wall seconds from a monotonic clock. Every reading of the budget goes through this function, so tests
    can replace it (``monkeypatch.setattr(time_budget, "clock", fake)``) and make time deterministic."""
    return time.perf_counter()


def check_max_minutes(value: Any) -> float | None:
    """Return ``value`` as minutes (a float), or None for no budget.

    Raises:
        ValueError: not a number (a bool is not one either), or not > 0; the message names ``max_minutes``.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"max_minutes: expected a number of minutes > 0 or None, got {type(value).__name__} {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"max_minutes: expected a number of minutes > 0 or None, got {value!r}")
    return float(value)


def plan_epochs(budget_seconds: float, elapsed: float, epoch_seconds: float, epochs_done: int) -> int:
    """The number of epochs of the whole run: those done, plus as many more of ``epoch_seconds`` as fit in what
    is left of the budget, rounded down; at least ``epochs_done`` (never fewer than one).

    After the first epoch (``epochs_done = 1``, ``elapsed = epoch_seconds``) this is
    ``max(1, floor(budget_seconds / epoch_seconds))``. Rounding down, with a first epoch that also paid for
    one-time costs (data-loader workers, cuDNN autotuning, compilation), errs on ending under the budget.

    Args:
        budget_seconds: the whole run's budget.
        elapsed: seconds of training so far (end of the epoch just timed).
        epoch_seconds: how long that epoch took (training and its validation).
        epochs_done: epochs finished so far.
    """
    more = math.floor(max(0.0, budget_seconds - elapsed) / max(epoch_seconds, 1e-9))
    return max(1, epochs_done + more)


class TimeBudget:
    """The Trainer's clock: ``elapsed_s`` across resumes, and the plan of a run with ``max_minutes``.

    The Trainer calls ``start`` when ``fit`` begins, ``epoch_start`` before each epoch's training and
    ``epoch_end`` after its validation (before ``on_checkpoint``). At the first ``epoch_end`` with a budget the
    plan is made, once: ``trainer.epochs`` becomes the planned number (``epochs`` given to the Trainer only
    lays the schedule of that first epoch) and a ``build_scheduler`` schedule is re-laid over the planned
    steps, so it reaches its final lr at the planned end. The plan is part of ``state_dict``: a resumed run
    does not plan again. As a safety net, a run whose elapsed time passes the budget by more than one epoch's
    estimate stops at that epoch's end.

    Args:
        max_minutes: the budget in minutes, or None (only ``elapsed_s`` is kept).
    """

    def __init__(self, max_minutes: float | None = None) -> None:
        self.max_minutes = check_max_minutes(max_minutes)
        self.plan: dict[str, Any] | None = None  # epochs, total_steps, epoch_seconds, budget_seconds, made_after
        self._before = 0.0  # seconds of training of the sessions before this one (restored from a checkpoint)
        self._session_start: float | None = None
        self._epoch_started_at = 0.0  # elapsed() when the current epoch started (kept across a mid-epoch resume)
        self._held: float | None = None  # the reading at an epoch's end, until the next epoch starts

    @property
    def budget_seconds(self) -> float | None:
        """The budget in seconds, or None."""
        return None if self.max_minutes is None else self.max_minutes * 60.0

    def start(self) -> None:
        """Start this session's clock (``fit`` calls it first)."""
        self._session_start, self._held = clock(), None

    def elapsed(self) -> float:
        """Wall seconds of training since the run's first ``fit``, over every resumed session.

        Between an epoch's end and the next epoch's start it returns the epoch's end reading, so the
        end-of-epoch checkpoint stores the same value the epoch's metrics row shows (a run resumed from that
        checkpoint then continues from it, never below a row it kept).
        """
        if self._held is not None:
            return self._held
        if self._session_start is None:
            return self._before
        return self._before + clock() - self._session_start

    def epoch_start(self, resumed_mid_epoch: bool) -> None:
        """Note when an epoch starts (a resumed mid-epoch one keeps the start its checkpoint stored)."""
        self._held = None
        if not resumed_mid_epoch:
            self._epoch_started_at = self.elapsed()

    def epoch_end(self, trainer: Trainer) -> None:
        """Read the clock once at an epoch's end (``trainer.epoch`` already counts the epoch as done) and,
        with a budget, make the plan (first time) or stop the run (safety net).

        Under DDP the reading is the maximum over the ranks (one all-reduce per epoch, only with a budget):
        every rank plans the same epochs and takes the same stop decision.
        """
        now = self.elapsed()
        epoch_seconds = now - self._epoch_started_at
        budget = self.budget_seconds
        if budget is not None and trainer.dist.enabled:
            agreed = torch.tensor([now, epoch_seconds], dtype=torch.float64, device=trainer.device)
            torch.distributed.all_reduce(agreed, op=torch.distributed.ReduceOp.MAX)
            now, epoch_seconds = float(agreed[0]), float(agreed[1])
        self._held = now
        if budget is None:
            return
        if self.plan is None:
            self._make_plan(trainer, budget, now, epoch_seconds)
            return
        overrun = now > budget + self.plan["epoch_seconds"]
        if overrun and trainer.epoch < trainer.epochs and not trainer.should_stop:
            trainer.should_stop = True
            if trainer.is_main_process:
                print(f"max_minutes={self.max_minutes:g}: {now:.1f} s elapsed, more than the budget ({budget:.1f} s) "
                      f"plus one epoch ({self.plan['epoch_seconds']:.1f} s): stopping after epoch {trainer.epoch} "
                      f"of the planned {trainer.epochs}", flush=True)  # fmt: skip

    def _make_plan(self, trainer: Trainer, budget: float, now: float, epoch_seconds: float) -> None:
        epochs = plan_epochs(budget, now, epoch_seconds, trainer.epoch)
        steps_per_epoch = math.ceil(trainer.batches_per_epoch / trainer.accumulate)
        self.plan = {
            "epochs": epochs,
            "total_steps": epochs * steps_per_epoch,
            "epoch_seconds": epoch_seconds,
            "budget_seconds": budget,
            "made_after": trainer.epoch,
        }
        relaid = self._apply(trainer, update_lr=True)
        if trainer.is_main_process:
            which = "first epoch" if trainer.epoch == 1 else f"epoch {trainer.epoch}"
            schedule = (
                f"schedule over {self.plan['total_steps']} steps"
                if relaid
                else "no schedule to re-lay"
                if trainer.scheduler is None
                else "the scheduler is not segkit's: kept"
            )
            print(f"max_minutes={self.max_minutes:g}: {which} took {epoch_seconds:.1f} s; planning {epochs} epochs "
                  f"({schedule})", flush=True)  # fmt: skip
            if trainer.frozen and trainer.unfreeze_at is not None and trainer.unfreeze_at >= epochs:
                print(f"max_minutes: unfreeze_at={trainer.unfreeze_at} is not reached in {epochs} epochs: "
                      f"{', '.join(trainer.frozen)} stay frozen", flush=True)  # fmt: skip
            if trainer.trackers:  # params.json (jsonl, always first) gets the plan; other trackers log params once
                from segkit.engine.reporting import run_params

                trainer.trackers[0].log_params(run_params(trainer))

    def _apply(self, trainer: Trainer, update_lr: bool) -> bool:
        """Set the trainer's epochs and its schedule's length from the plan; True when the schedule was re-laid."""
        assert self.plan is not None
        trainer.epochs = int(self.plan["epochs"])
        return set_schedule_length(trainer.scheduler, int(self.plan["total_steps"]), update_lr=update_lr)

    def state_dict(self) -> dict[str, Any]:
        """Plain data for the checkpoint: the elapsed seconds, the current epoch's start and the plan."""
        return {
            "elapsed": self.elapsed(),
            "epoch_started_at": self._epoch_started_at,
            "plan": None if self.plan is None else dict(self.plan),
        }

    def load_state_dict(self, state: dict[str, Any] | None, trainer: Trainer) -> None:
        """Restore ``state_dict``'s values and, with a budget, follow the stored plan (epochs and schedule
        length; the optimizer's current lr comes from its own restored state). Without a budget a stored plan
        is not followed (the run trains to ``epochs``, one line says so). ``state`` None: a checkpoint written
        before segkit kept time (elapsed restarts from 0).
        """
        if state is None:
            return
        self._before = float(state.get("elapsed", 0.0))
        self._epoch_started_at = float(state.get("epoch_started_at", 0.0))
        self._held = None
        plan = state.get("plan")
        if plan is None:
            return
        if self.max_minutes is None:
            if trainer.is_main_process:
                print(f"resume: the checkpoint's time plan ({plan['epochs']} epochs) is not followed: this run has "
                      f"no max_minutes, it trains to epochs={trainer.epochs}", flush=True)  # fmt: skip
            return
        self.plan = dict(plan)
        self._apply(trainer, update_lr=False)
        stored = plan["budget_seconds"] / 60.0
        if not math.isclose(stored, self.max_minutes) and trainer.is_main_process:
            print(f"resume: following the checkpoint's plan of {plan['epochs']} epochs (made for max_minutes="
                  f"{stored:g}); max_minutes={self.max_minutes:g} is not used to plan again", flush=True)  # fmt: skip
