"""A wall-clock budget for a run (``Trainer(max_minutes=...)``): the number of epochs and the learning-rate
schedule are planned after the first epoch and re-planned at every epoch's end from the mean epoch time, so the
run ends near the budget with its schedule at its final lr; the plan is stored in checkpoints so a resumed run
follows it exactly. Also keeps ``elapsed_s``, the wall seconds of training across resumes."""

from __future__ import annotations

import logging
import math
import time
from typing import TYPE_CHECKING, Any

import torch

from segkit.engine.optim import set_schedule_length

_log = logging.getLogger(__name__)

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
    is left of the budget, rounded down, but at least one more while any of the budget is left; only
    ``epochs_done`` (never fewer than one) once the budget is spent.

    After the first epoch (``epochs_done = 1``, ``elapsed = epoch_seconds``) this is
    ``max(2, floor(budget_seconds / epoch_seconds))`` while the first epoch ended under the budget. Rounding
    down errs on ending under the budget. The one more epoch when less than one is left is what lets a run end
    at its final lr: the plan is remade at each epoch's end, and planning no more epochs with budget left
    would stop the run before its lr schedule ends (after an epoch slower than the estimate); one more ends it
    at its final lr, less than one epoch past the budget.

    Args:
        budget_seconds: the whole run's budget.
        elapsed: seconds of training so far (end of the epoch just timed).
        epoch_seconds: the estimated length of one epoch (training and its validation).
        epochs_done: epochs finished so far.

    Example:
        >>> plan_epochs(600.0, 61.2, 61.2, 1)  # 1 + floor(538.8 / 61.2)
        9
        >>> plan_epochs(600.0, 590.0, 20.0, 30)  # 10 s left: one more epoch, to end the schedule
        31
        >>> plan_epochs(600.0, 605.0, 20.0, 30)  # spent: stop here
        30
    """
    left = budget_seconds - elapsed
    if left <= 0:
        return max(1, epochs_done)
    more = max(1, math.floor(left / max(epoch_seconds, 1e-9)))
    return epochs_done + more


def _agreed(trainer: Trainer, *readings: float) -> tuple[float, ...]:
    """The maximum of each clock reading over the ranks (one all-reduce): every rank then decides alike."""
    agreed = torch.tensor(readings, dtype=torch.float64, device=trainer.device)
    torch.distributed.all_reduce(agreed, op=torch.distributed.ReduceOp.MAX)
    return tuple(float(x) for x in agreed)


class TimeBudget:
    """The Trainer's clock: ``elapsed_s`` across resumes, and the plan of a run with ``max_minutes``.

    The Trainer calls ``start`` when ``fit`` begins, ``epoch_start`` before each epoch's training and
    ``epoch_end`` after its validation (before ``on_checkpoint``). With a budget:

    - At the first ``epoch_end`` the plan is made from that epoch's time: ``trainer.epochs`` becomes the
      planned number (``epochs`` given to the Trainer only lays the schedule of that first epoch) and a
      ``build_scheduler`` schedule is re-laid over the planned steps, so it reaches its final lr at the
      planned end.
    - At every later ``epoch_end`` but the planned last one the plan is checked against what is left of the
      budget and the mean time of the epochs after the first (the first paid one-time costs: workers, cuDNN
      autotuning, compilation). When its projected end misses the budget by more than one epoch (or a quarter
      of what is left, whichever is more: no flip-flop on small changes of pace) it is remade (``plan_epochs``),
      the schedule is re-laid over the new count and one line says so. Epochs that slow down or speed up move
      the end, so the run ends within about one epoch of the budget with its schedule at its final lr.
    - A first plan of one more epoch cannot be corrected at an epoch's end: ``batch_end`` re-plans it after the
      first quarter of that epoch's batches from their pace (a first epoch slowed by compilation or a cold disk
      planned 2 epochs of a budget that holds 30). When even that epoch does not fit (what is left is less than
      the first epoch), it stops at the budget mid-epoch with ``last.pt`` written, unless its pace shows it fits.
    - At an epoch's end with the budget already spent (an epoch much slower than the estimate) the run stops
      there, the plan becomes the epochs done, and one line says so: the schedule then stops short of its
      final lr.

    The plan is part of ``state_dict`` (with the reading it is remade from): a resumed run continues it and,
    given the same clock readings, takes the same decisions as an uninterrupted one.

    Args:
        max_minutes: the budget in minutes, or None (only ``elapsed_s`` is kept).
    """

    def __init__(self, max_minutes: float | None = None) -> None:
        self.max_minutes = check_max_minutes(max_minutes)
        # epochs, total_steps, budget_seconds; epoch_seconds and made_after: the first epoch's time and the
        # epoch the plan was first made after; made_at_s: the elapsed seconds then (the later epochs' mean is
        # measured from it); estimate_s and replanned_after: the epoch time and the epoch of the last change.
        self.plan: dict[str, Any] | None = None
        self._before = 0.0  # seconds of training of the sessions before this one (restored from a checkpoint)
        self._session_start: float | None = None
        self._epoch_started_at = 0.0  # elapsed() when the current epoch started (kept across a mid-epoch resume)
        self._held: float | None = None  # the reading at an epoch's end, until the next epoch starts
        self._train_ended_at = 0.0  # elapsed() when the current epoch's training ended (its validation follows)

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

    def train_end(self) -> None:
        """Note the end of an epoch's training (its validation follows): the plan separates the two."""
        self._train_ended_at = self.elapsed()

    def epoch_end(self, trainer: Trainer) -> None:
        """Read the clock once at an epoch's end (``trainer.epoch`` already counts the epoch as done) and,
        with a budget, make the plan (first time), remake it, or stop the run (budget spent).

        Under DDP the reading is the maximum over the ranks (one all-reduce per epoch, only with a budget);
        every decision below is a function of the agreed readings and of the plan (itself made from agreed
        readings on every rank), so every rank plans the same epochs and stops at the same one.
        """
        now = self.elapsed()
        epoch_seconds = now - self._epoch_started_at
        val_seconds = max(0.0, now - max(self._train_ended_at, self._epoch_started_at))
        budget = self.budget_seconds
        if budget is not None and trainer.dist.enabled:
            now, epoch_seconds, val_seconds = _agreed(trainer, now, epoch_seconds, val_seconds)
        self._held = now
        if budget is None:
            return
        if self.plan is None:
            self._make_plan(trainer, budget, now, epoch_seconds, val_seconds)
        elif trainer.epoch < self.plan["epochs"]:
            # Not after the planned last epoch: its schedule has reached its final lr, and a longer plan would
            # lay it again from a point before its end (the lr would go back up); the run ends there.
            self._replan(trainer, now)

    def _make_plan(self, trainer: Trainer, budget: float, now: float, epoch_seconds: float, val_seconds: float) -> None:
        epochs = plan_epochs(budget, now, epoch_seconds, trainer.epoch)
        # A plan of one more epoch is the only one no later epoch's end can correct: its first batches are timed
        # instead (see batch_end). When not even one more epoch of the first one's length fits, that epoch stops at
        # the budget unless its first batches show that it fits.
        second_only = epochs == trainer.epoch + 1 and trainer.batches_per_epoch >= 2
        self.plan = {
            "epochs": epochs,
            "total_steps": epochs * self._steps_per_epoch(trainer),
            "epoch_seconds": epoch_seconds,
            "val_seconds": val_seconds,
            "budget_seconds": budget,
            "made_after": trainer.epoch,
            "made_at_s": now,
            "estimate_s": epoch_seconds,
            "replanned_after": None,
            "check_at_batch": math.ceil(trainer.batches_per_epoch / 4) if second_only else None,
            "deadline": second_only and budget - now < epoch_seconds,
        }
        which = "first epoch" if trainer.epoch == 1 else f"epoch {trainer.epoch}"
        if epochs <= trainer.epoch:  # the budget is spent already: nothing to re-lay, the run ends here
            trainer.epochs = epochs
            self._say(trainer, f"{which} took {epoch_seconds:.1f} s, {now:.1f} s in all: the budget ({budget:.1f} s) "
                               f"is spent, stopping after it")  # fmt: skip
            self._changed(trainer, unfreeze_was_reached=True)
            return
        relaid = self._apply(trainer, update_lr=True)
        schedule = self._schedule(trainer, relaid)
        if self.plan["deadline"]:
            self._say(trainer, f"{which} took {epoch_seconds:.1f} s, {budget - now:.1f} s of the budget ({budget:.1f} s) "
                               f"are left: another epoch of that length does not fit. Epoch {epochs} ({schedule}) "
                               f"stops when the budget is spent (last.pt resumes it), unless its first "
                               f"{self.plan['check_at_batch']} batches show that later epochs are shorter")  # fmt: skip
        else:
            self._say(trainer, f"{which} took {epoch_seconds:.1f} s; planning {epochs} epochs ({schedule})")
        self._changed(trainer, unfreeze_was_reached=True)

    def batch_end(self, trainer: Trainer) -> bool:
        """Called after each optimizer step; True when the run must stop now.

        Active only in the epoch after a first plan of one more epoch (see ``_make_plan``), which no epoch's end
        could re-plan: after its first quarter of batches the plan is remade from their pace (the later epochs
        are often much shorter than the first, which paid for compilation or a cold disk); and when that epoch
        was found not to fit, it stops at the budget. Elsewhere it returns False at once (no clock reading).
        Under DDP the reading is the maximum over the ranks (a collective, only in that epoch), so every rank
        decides alike.
        """
        plan = self.plan
        if (
            plan is None
            or trainer.epoch != int(plan["made_after"])
            or not (plan.get("deadline") or plan.get("check_at_batch"))
        ):
            return False
        now = self.elapsed()
        if trainer.dist.enabled:
            now = _agreed(trainer, now)[0]
        check_at = plan.get("check_at_batch")
        if check_at and trainer.batches_done >= check_at:
            plan["check_at_batch"] = None
            self._replan_from_batches(trainer, now)
        if plan.get("deadline") and now >= float(plan["budget_seconds"]):
            self._say(trainer, f"the budget ({float(plan['budget_seconds']):.1f} s) is spent in epoch {trainer.epoch + 1}"
                               f" after batch {trainer.batches_done} of {trainer.batches_per_epoch} ({now:.1f} s): "
                               f"stopping here without its validation; last.pt holds this point and resumes "
                               f"it (best.pt is the best validated epoch)")  # fmt: skip
            return True
        return False

    def _replan_from_batches(self, trainer: Trainer, now: float) -> None:
        """Remake the plan in the epoch after the first one from the pace of its first batches."""
        assert self.plan is not None
        plan, done = self.plan, trainer.epoch + 1  # epochs done at the end of this one
        fraction = trainer.batches_done / trainer.batches_per_epoch
        train_seconds, val_seconds = (now - self._epoch_started_at) / fraction, float(plan.get("val_seconds", 0.0))
        estimate = train_seconds + val_seconds
        end = now + train_seconds * (1.0 - fraction) + val_seconds  # this epoch's projected end
        budget, before = float(plan["budget_seconds"]), int(plan["epochs"])
        epochs = plan_epochs(budget, end, estimate, done)
        fits = end <= budget
        if epochs == before and not (plan["deadline"] and fits):
            return
        plan.update(epochs=epochs, estimate_s=estimate, deadline=plan["deadline"] and epochs == done and not fits)
        plan["total_steps"] = epochs * self._steps_per_epoch(trainer)
        relaid = self._apply(trainer, update_lr=True)
        pace = (f"its first {trainer.batches_done} of {trainer.batches_per_epoch} batches took "
                f"{now - self._epoch_started_at:.1f} s: epochs take about {estimate:.1f} s, not {plan['epoch_seconds']:.1f} s")  # fmt: skip
        if epochs == before:
            self._say(trainer, f"epoch {done}: {pace}; it fits in the budget, no stop at the budget")
        else:
            self._say(trainer, f"epoch {done}: {pace}; planning {epochs} epochs instead of {before} "
                               f"({self._schedule(trainer, relaid)})")  # fmt: skip
        self._changed(trainer, unfreeze_was_reached=self._unfreeze_reached(trainer, before))

    def _replan(self, trainer: Trainer, now: float) -> None:
        assert self.plan is not None
        plan, done = self.plan, trainer.epoch
        budget = float(plan["budget_seconds"])  # the checkpoint's budget: a resumed run continues its plan
        later = done - int(plan["made_after"])  # epochs since the first plan (>= 1 here)
        if "made_at_s" in plan:
            estimate = (now - float(plan["made_at_s"])) / later  # the mean of the later epochs, overheads included
        else:  # a plan from a checkpoint of segkit before re-planning: its first epoch's time
            estimate = float(plan["epoch_seconds"])
        epochs = plan_epochs(budget, now, estimate, done)
        before = int(plan["epochs"])
        left = budget - now
        if epochs == before or (left > 0 and abs(left - (before - done) * estimate) <= max(estimate, left / 4)):
            # The plan holds while its projected end misses the budget by at most one epoch, or a quarter of what is
            # left: each re-plan moves the lr, and re-planning on every small change of pace makes the plan flip
            # back and forth (an early estimate rests on few epochs). The tolerance shrinks to one epoch near the
            # end, so the re-plan after the last-but-one epoch still ends the run within one epoch of the budget.
            return  # no new line, no re-laid schedule: the logs stay quiet while the plan holds

        unfreeze_was_reached = self._unfreeze_reached(trainer, before)
        plan.update(epochs=epochs, estimate_s=estimate, replanned_after=done)
        if epochs <= done:
            # Spent: stop here. The schedule stays laid over the previous plan's steps, so it stops short of its
            # final lr; an epoch this much slower than the estimate is the only way to get here.
            trainer.epochs = epochs
            self._say(trainer, f"the budget ({budget:.1f} s) is spent after epoch {done} ({now:.1f} s): stopping "
                               f"here, not at the planned {before}; the lr schedule stops short of its final lr")  # fmt: skip
            self._changed(trainer, unfreeze_was_reached=False)  # params.json; no unfreeze note: the run ends
            return
        plan["total_steps"] = epochs * self._steps_per_epoch(trainer)
        # update_lr: the next step uses the new curve. The lr jumps from the old curve's value at this step to
        # the new one's: a change of the plan by k epochs moves it about as much as k epochs of the schedule
        # would (for a cosine over N epochs at most ~pi/2 * k/N of the base lr, smaller early and late). Keeping
        # it continuous would bend the shape into a chain of segments whose joins the checkpoint must carry;
        # the jump keeps the lr a function of (step, planned steps), as a run planned so from the start.
        relaid = self._apply(trainer, update_lr=True)
        first = int(plan["made_after"]) + 1
        mean_of = f"epoch {first}" if first == done else f"mean of epochs {first}-{done}"
        self._say(trainer, f"epochs take {estimate:.1f} s ({mean_of}), {budget - now:.1f} s left after epoch {done}: "
                           f"planning {epochs} epochs instead of {before} ({self._schedule(trainer, relaid)})")  # fmt: skip
        self._changed(trainer, unfreeze_was_reached)

    @staticmethod
    def _steps_per_epoch(trainer: Trainer) -> int:
        return math.ceil(trainer.batches_per_epoch / trainer.accumulate)

    def _schedule(self, trainer: Trainer, relaid: bool) -> str:
        assert self.plan is not None
        if relaid:
            return f"schedule over {self.plan['total_steps']} steps"
        return "no schedule to re-lay" if trainer.scheduler is None else "the scheduler is not segkit's: kept"

    def _say(self, trainer: Trainer, line: str) -> None:
        if trainer.is_main_process:
            _log.info(f"max_minutes={self.max_minutes:g}: {line}")

    @staticmethod
    def _unfreeze_reached(trainer: Trainer, epochs: int) -> bool:
        return not (trainer.frozen and trainer.unfreeze_at is not None and trainer.unfreeze_at >= epochs)

    def _changed(self, trainer: Trainer, unfreeze_was_reached: bool) -> None:
        """After the plan's epoch count changed: say when ``unfreeze_at`` is no longer reached (once, when that
        flips), and give params.json the new plan."""
        assert self.plan is not None
        epochs = int(self.plan["epochs"])
        if unfreeze_was_reached and not self._unfreeze_reached(trainer, epochs) and trainer.is_main_process:
            _log.info(
                f"max_minutes: unfreeze_at={trainer.unfreeze_at} is not reached in {epochs} epochs: "
                f"{', '.join(trainer.frozen)} stay frozen"
            )
        if trainer.trackers and trainer.is_main_process:
            # params.json (jsonl, always first) gets the plan; the other trackers logged params once, at the start
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
        """Restore ``state_dict``'s values and, with a budget, continue the stored plan (epochs and schedule
        length now; the optimizer's current lr comes from its own restored state; later re-plans use the
        stored budget). Without a budget a stored plan is not followed (the run trains to ``epochs``, one line
        says so). ``state`` None: a checkpoint written before segkit kept time (elapsed restarts from 0).
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
                _log.info(
                    f"resume: the checkpoint's time plan ({plan['epochs']} epochs) is not followed: this run has "
                    f"no max_minutes, it trains to epochs={trainer.epochs}"
                )
            return
        self.plan = dict(plan)
        self._apply(trainer, update_lr=False)
        stored = plan["budget_seconds"] / 60.0
        if not math.isclose(stored, self.max_minutes) and trainer.is_main_process:
            _log.info(
                f"resume: continuing the checkpoint's plan of {plan['epochs']} epochs for max_minutes={stored:g}; "
                f"max_minutes={self.max_minutes:g} is not used"
            )
