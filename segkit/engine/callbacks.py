"""Trainer callbacks: the hook interface and the built-ins (checkpointing, early stopping, LR monitor)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from segkit.engine.trainer import Trainer

__all__ = ["Callback", "EarlyStopping", "LRMonitor", "ModelCheckpoint", "check_monitor"]


class Callback:
    """Base class; override any hook. Each hook gets the trainer and at most one payload.

    Order (see ``Trainer.fit``)::

        on_fit_start(trainer)
        for each epoch:
            on_epoch_start(trainer)
            for each batch:
                on_step_end(trainer)                      # every rank, after each optimizer step
                on_train_batch_end(trainer, outputs)
            on_validation_end(trainer, val_metrics)       # when there is validation data
            on_epoch_end(trainer, metrics)                # train and val metrics together
            on_checkpoint(trainer, metrics)               # after every callback's on_epoch_end
        on_fit_end(trainer)

    Decisions (the best score, early stopping's count) are taken in ``on_epoch_end``; files are written in
    ``on_checkpoint``, so a checkpoint holds every callback's state *after* the epoch it closes and a resumed
    run takes the same decisions as an uninterrupted one.
    """

    def on_fit_start(self, trainer: Trainer) -> None:
        """Called once before the first epoch."""

    def on_epoch_start(self, trainer: Trainer) -> None:
        """Called before each training epoch."""

    def on_step_end(self, trainer: Trainer) -> None:
        """Called on every rank after each optimizer step (``trainer.global_step`` counts it). ``ModelCheckpoint``
        writes the mid-epoch ``last.pt`` here; a collective in this hook runs on every rank alike."""

    def on_train_batch_end(self, trainer: Trainer, outputs: dict[str, Any]) -> None:
        """Called after each optimizer step attempt with ``training_step``'s dict (tensors, not synced)."""

    def on_validation_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        """Called after validation with its metrics (``miou``, ...)."""

    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        """Called at the end of each epoch with ``{"train/...": ..., "val/...": ...}``."""

    def on_checkpoint(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        """Called after every callback's ``on_epoch_end``: the place to write checkpoints (``trainer.save_last``,
        ``trainer.save_checkpoint``), which then hold each callback's state after this epoch."""

    def on_fit_end(self, trainer: Trainer) -> None:
        """Called once after training ends (normally or by early stopping)."""


class ModelCheckpoint(Callback):
    """Save ``last.pt`` every epoch (and every ``trainer.checkpoint_every`` steps) and ``best.pt`` when the
    monitored metric improves.

    ``best.pt`` is never written from non-finite weights or a non-finite metric. With ``keep_last=N``
    the newest ``N`` ``epoch_XXX.pt`` files are kept (older ones deleted); the previous ``last.pt``
    stays as ``last.prev.pt``, so ``fit(resume="last")`` has a fallback if ``last.pt`` is damaged.
    Only rank 0 writes. A ``monitor`` that the epoch's metrics do not hold once validation has run is an
    error listing the names they do hold (a misspelt name would otherwise never write ``best.pt``).

    Args:
        monitor: key of the epoch metrics, e.g. ``"val/miou"``.
        mode: "max" or "min".
        keep_last: keep this many numbered ``epoch_XXX.pt`` files besides ``last.pt`` and ``best.pt``
            (0 = none).
    """

    def __init__(self, monitor: str = "val/miou", mode: str = "max", keep_last: int = 0) -> None:
        if mode not in ("max", "min"):
            raise ValueError(f"ModelCheckpoint: mode must be 'max' or 'min', got {mode!r}")
        if keep_last < 0:
            raise ValueError(f"ModelCheckpoint: keep_last must be >= 0, got {keep_last}")
        self.monitor = monitor
        self.mode = mode
        self.keep_last = keep_last
        self.best: float | None = None
        self._improved = False

    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        check_monitor("ModelCheckpoint", self.monitor, metrics)
        self._improved = False
        value = metrics.get(self.monitor)
        if value is None or not math.isfinite(float(value)) or not trainer.weights_finite():
            return
        value = float(value)
        if self.best is None or (value > self.best if self.mode == "max" else value < self.best):
            self.best, self._improved = value, True

    def on_step_end(self, trainer: Trainer) -> None:
        # Mid-epoch last.pt: every checkpoint_every steps, and where a max_minutes budget stops the epoch.
        every = trainer.checkpoint_every
        if trainer.stopped_mid_epoch or (every and trainer.global_step % every == 0):
            trainer.sync_for_checkpoint()  # every rank (a collective under DDP), before rank 0 writes
            if trainer.is_main_process:
                trainer.save_last()

    def on_checkpoint(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        if not trainer.is_main_process:
            return
        # best.pt first: every other file of this epoch records the new best, and a run resumed from one of them
        # never writes best.pt again. Killed before best.pt is complete, the run resumes from the previous
        # epoch's file, which does not record the new best, so the repeated epoch writes best.pt.
        if self._improved:
            trainer.save_checkpoint(trainer.out_dir / "best.pt", metrics)
        if self.keep_last > 0:
            trainer.save_checkpoint(trainer.out_dir / f"epoch_{trainer.epoch:03d}.pt", metrics)
            old = sorted(trainer.out_dir.glob("epoch_*.pt"))[: -self.keep_last]
            for p in old:
                p.unlink(missing_ok=True)
        trainer.save_last(metrics)

    def state_dict(self) -> dict[str, Any]:
        return {"monitor": self.monitor, "mode": self.mode, "best": self.best}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = state.get("best")


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs.

    The decision is taken from metrics that are identical on every process (validation
    metrics are all-reduced), so all ranks stop together.
    """

    def __init__(self, monitor: str = "val/miou", patience: int = 5, mode: str = "max", min_delta: float = 0.0) -> None:
        self.monitor = monitor
        self.patience = patience
        self.mode = mode
        self.min_delta = min_delta
        self.best: float | None = None
        self.bad_epochs = 0

    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        check_monitor("EarlyStopping", self.monitor, metrics)
        value = metrics.get(self.monitor)
        if value is None or not math.isfinite(float(value)):
            return
        value = float(value)
        better = self.best is None or (
            value > self.best + self.min_delta if self.mode == "max" else value < self.best - self.min_delta
        )
        if better:
            self.best, self.bad_epochs = value, 0
        else:
            self.bad_epochs += 1
            if self.bad_epochs >= self.patience:
                trainer.should_stop = True

    def state_dict(self) -> dict[str, Any]:
        return {"monitor": self.monitor, "mode": self.mode, "best": self.best, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = state.get("best")
        self.bad_epochs = int(state.get("bad_epochs", 0))


def check_monitor(owner: str, monitor: str, metrics: dict[str, Any]) -> None:
    """Raise ``ValueError`` listing the metric names when ``monitor`` is not among the epoch ``metrics``.

    A ``val/...`` monitor is only checked once validation has run (some ``val/`` key is present): a run
    without validation data writes no ``best.pt`` by design. Every rank sees the same metrics, so every rank
    raises alike (no DDP hang)."""
    if monitor in metrics:
        return
    if monitor.startswith("val/") and not any(k.startswith("val/") for k in metrics):
        return
    names = sorted(k for k in metrics if not k.startswith("val/iou/"))
    per_class = " (and val/iou/<class> for each class)" if any(k.startswith("val/iou/") for k in metrics) else ""
    bare = [n[4:] for n in names if n.startswith("val/")]
    raise ValueError(
        f"{owner}: monitor {monitor!r} is not among the epoch metrics: {', '.join(names)}{per_class}. "
        f"Give one of these (Trainer(monitor=...) / train.monitor take the validation name without 'val/': "
        f"{', '.join(bare) or 'none'})"
    )


class LRMonitor(Callback):
    """Log the learning rate of each parameter group at every epoch end (``lr/group0``, ...)."""

    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        for i, group in enumerate(trainer.optimizer.param_groups):
            metrics[f"lr/group{i}"] = float(group["lr"])
