"""The training state: ``TrainState`` (where a run is), what a checkpoint holds and how it is read back, by name
(model, optimizer, scheduler, scaler, EMA, each callback, the time budget), where resume finds it, the per-rank RNG
states and partial epoch loss, and the metrics rows an interrupted run logged after its checkpoint.
``segkit.checkpoint`` is the atomic file writer and safe reader underneath."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from segkit.checkpoint import CheckpointError, load_checkpoint, load_state_dict_checked, save_checkpoint
from segkit.engine.rng import get_rng_state, set_rng_state
from segkit.models import model_config

_log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from segkit.engine.trainer import Trainer

__all__ = [
    "TrainState",
    "TrainingStateMethods",
    "callback_key",
    "callback_states",
    "check_mid_epoch_position",
    "find_resume_checkpoint",
    "gather_rng_states",
    "load_callback_states",
    "restore_training_state",
    "rng_state_for_rank",
    "training_state",
    "truncate_jsonl",
]


@dataclass
class TrainState:
    """Where a run is: the Trainer's one object of progress, written to checkpoints and read back by name.

    Attributes:
        epoch: epochs finished (the 0-based index of the epoch in progress).
        global_step: optimizer steps taken.
        batches_done: batches of the current epoch consumed (exact resume inside an epoch).
        nonfinite_steps: batches skipped as non-finite over the run.
        consecutive_nonfinite: the current run of non-finite batches (``max_nonfinite`` stops training).
        epoch_loss: ``(sum, count)`` of the current epoch's finite losses on this process (a tensor on the device).
        rng_ranks: ``(global_step, every rank's RNG state)``, gathered under DDP just before a checkpoint.
        gathered_epoch_loss: ``((epoch, batches_done, global_step), (sum, count) over the ranks)``, the same.
        resumed_step: the step a resumed run started from (rows logged after it are dropped), or None.
    """

    epoch: int = 0
    global_step: int = 0
    batches_done: int = 0
    nonfinite_steps: int = 0
    consecutive_nonfinite: int = 0
    epoch_loss: torch.Tensor = field(default_factory=lambda: torch.zeros(2))
    rng_ranks: tuple[int, list[dict[str, Any]]] | None = None
    gathered_epoch_loss: tuple[tuple[int, int, int], torch.Tensor] | None = None
    resumed_step: int | None = None

    @property
    def position(self) -> tuple[int, int, int]:
        """``(epoch, batches_done, global_step)``."""
        return self.epoch, self.batches_done, self.global_step

    def state_dict(self) -> dict[str, Any]:
        """The checkpoint entries of the position (the epoch loss summed over the ranks when it was gathered)."""
        gathered = self.gathered_epoch_loss
        loss = gathered[1] if gathered is not None and gathered[0] == self.position else self.epoch_loss.detach()
        ranks = self.rng_ranks
        return {
            "epoch": self.epoch,
            "global_step": self.global_step,
            "batches_done": self.batches_done,
            "epoch_loss": loss.cpu().clone(),
            "nonfinite": [self.nonfinite_steps, self.consecutive_nonfinite],
            "rng_ranks": ranks[1] if ranks is not None and ranks[0] == self.global_step else None,
        }

    def load_state_dict(self, state: Mapping[str, Any], rank: int = 0) -> None:
        """Restore the position. The stored epoch loss is every rank's partial sum: rank 0 carries it, the others
        restart from zero, and the all-reduce at the epoch's end adds them up once."""
        self.epoch, self.global_step = int(state["epoch"]), int(state["global_step"])
        self.batches_done = int(state.get("batches_done", 0))
        if "epoch_loss" in state:
            total = state["epoch_loss"].to(self.epoch_loss.device)
            self.epoch_loss = total if rank == 0 else torch.zeros_like(total)
        self.nonfinite_steps, self.consecutive_nonfinite = (int(v) for v in state.get("nonfinite", [0, 0]))


def find_resume_checkpoint(resume: str | Path, out_dir: Path) -> tuple[Path, dict[str, Any]]:
    """Return ``(path, state)`` of the checkpoint to resume from.

    ``"last"`` tries ``out_dir/last.pt`` and, when it is missing, truncated or corrupt, falls back to
    the newest readable of ``last.prev.pt`` and ``epoch_*.pt`` (by the step stored inside).

    Raises:
        CheckpointError: no readable checkpoint; the message lists what was tried and why it failed.
    """
    if str(resume) != "last":
        path = Path(resume)
        return path, load_checkpoint(path)
    candidates = [out_dir / "last.pt", out_dir / "last.prev.pt", *sorted(out_dir.glob("epoch_*.pt"))]
    errors, found = [], []
    for path in candidates:
        try:
            state = load_checkpoint(path)
        except CheckpointError as exc:
            errors.append(str(exc))
            continue
        if "global_step" in state:
            found.append((int(state["global_step"]), path.name == "last.pt", path, state))
    if not found:
        raise CheckpointError(f"resume='last': no readable checkpoint in {out_dir}; tried: " + " | ".join(errors))
    found.sort(key=lambda item: (item[0], item[1]))
    _, _, path, state = found[-1]
    return path, state


def training_state(trainer: Trainer, metrics: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The plain-data checkpoint of a trainer (see ``Trainer.state_dict``)."""
    return {
        "model": trainer.module.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "scheduler": trainer.scheduler.state_dict() if trainer.scheduler is not None else None,
        "scaler": trainer.scaler.state_dict() if trainer.scaler is not None else None,
        "ema": trainer.ema.state_dict() if trainer.ema is not None else None,
        **trainer.state.state_dict(),
        # The sample position of a mid-epoch checkpoint is batches_done * batch_size on each of world_size ranks.
        "batch_size": trainer.batch_size,
        "world_size": trainer.dist.world_size,
        "rng": get_rng_state(),
        "metrics": {k: float(v) for k, v in (metrics or {}).items() if isinstance(v, (int, float))},
        "config": trainer.config,
        # How build_model made the model (name and arguments, no pretrained weights): rebuilt without a config.
        "model_config": model_config(trainer.module),
        "task": trainer.task,
        "num_classes": trainer.num_classes,
        "class_names": trainer.class_names,
        "ignore_index": trainer.ignore_index,
        "palette": None if trainer.palette is None else np.asarray(trainer.palette).astype(int).tolist(),
        # Raw-unit per-channel statistics of the training images (Predictor normalises new images with them).
        "normalization": None if (norm := getattr(trainer, "normalization", None)) is None else norm.to_dict(),
        "in_channels": getattr(trainer, "in_channels", None),
        # The size training resized every image to (a folder's image_size): Predictor resizes new images alike.
        "input_size": None if (size := getattr(trainer, "input_size", None)) is None else list(size),
        # How the training masks were stored: `segkit predict` writes its masks the same way.
        "mask_format": getattr(trainer, "mask_format", None),
        "callbacks": callback_states(trainer.callbacks),
        # What the optimizer and schedule were built with: a resume that asks for other values is told which are used.
        "hyperparameters": _hyperparameters(trainer),
        # Elapsed wall seconds and the max_minutes plan (epochs, schedule length): a resumed run follows it.
        "time_budget": trainer.time_budget.state_dict(),
    }


def restore_training_state(trainer: Trainer, state: dict[str, Any], source: str = "checkpoint") -> None:
    """Load what ``training_state`` saved into a trainer whose optimizer and scheduler exist.

    Raises:
        CheckpointError: a checkpoint written in the middle of an epoch, resumed with another batch size or
            number of processes (the samples already seen could not be skipped exactly); see
            ``check_mid_epoch_position``.
    """
    check_mid_epoch_position(state, trainer.batch_size, trainer.dist.world_size, source)
    load_state_dict_checked(trainer.module, state["model"], source=source)
    trainer.optimizer.load_state_dict(state["optimizer"])
    if trainer.scheduler is not None and state.get("scheduler") is not None:
        trainer.scheduler.load_state_dict(state["scheduler"])
    if trainer.scaler is not None and state.get("scaler") is not None:
        trainer.scaler.load_state_dict(state["scaler"])
    if trainer.ema is not None and state.get("ema") is not None:
        trainer.ema.load_state_dict(state["ema"])
    _say_changed_hyperparameters(trainer, state.get("hyperparameters"), source)
    for line in load_callback_states(trainer.callbacks, state.get("callbacks"), source):
        if trainer.is_main_process:
            _log.info(line)
    trainer.state.load_state_dict(state, trainer.dist.rank)
    trainer.time_budget.load_state_dict(state.get("time_budget"), trainer)  # after the scheduler: sets its length
    rng = rng_state_for_rank(state, trainer.dist.rank, trainer.dist.world_size)
    if rng is not None:
        set_rng_state(rng)


def callback_key(callback: Any) -> str:
    """The stable name a callback's state is stored under: its ``state_key`` attribute when it has one, else
    its class's qualified name (detectron2 keys hook states the same way)."""
    return str(getattr(callback, "state_key", None) or type(callback).__qualname__)


def _keyed(callbacks: Sequence[Any]) -> dict[str, Any]:
    """``{key: callback}`` for the callbacks that keep state; a repeated key gets ``#2``, ``#3``... in order."""
    keyed: dict[str, Any] = {}
    for cb in callbacks:
        if not hasattr(cb, "state_dict"):
            continue
        key, n = callback_key(cb), 1
        while (key if n == 1 else f"{key}#{n}") in keyed:
            n += 1
        keyed[key if n == 1 else f"{key}#{n}"] = cb
    return keyed


def callback_states(callbacks: Sequence[Any]) -> dict[str, Any]:
    """The state of every callback that has a ``state_dict``, keyed by ``callback_key`` (never by position:
    a run resumed with other callbacks gives each state to its owner or to nobody)."""
    return {key: cb.state_dict() for key, cb in _keyed(callbacks).items()}


def load_callback_states(callbacks: Sequence[Any], stored: Any, source: str = "checkpoint") -> list[str]:
    """Give each stored state to the callback of the same key; return the lines to show the user.

    A state whose owner is not among ``callbacks`` is named in one line and given to nobody. A state that
    records another ``monitor`` than its callback's (a resume with a changed ``monitor``) is not loaded: its
    best score belongs to another metric, so the callback starts afresh, and a line says so. A list (segkit
    before keyed states) is matched only where it cannot be wrong: its first entry was always the Trainer's
    ``ModelCheckpoint``; the others are named as not restored.

    Args:
        callbacks: the trainer's callbacks.
        stored: the checkpoint's ``"callbacks"`` entry (a dict, a list from older segkit, or None).
        source: the checkpoint file, for the lines.

    Returns:
        Lines to print (empty when every state found its owner unchanged).
    """
    if not stored:
        return []
    if isinstance(stored, (list, tuple)):  # older checkpoints: by position
        by_position = stored
        stored = {f"callback {i} (by position)": v for i, v in enumerate(by_position, start=1)}
        if isinstance(by_position[0], Mapping) and set(by_position[0]) == {"best"}:  # the Trainer's own, always first
            stored["ModelCheckpoint"] = stored.pop("callback 1 (by position)")
    keyed, lines = _keyed(callbacks), []
    for key, cb_state in stored.items():
        cb = keyed.get(key)
        if cb is None or cb_state is None:
            continue
        old, new = cb_state.get("monitor") if isinstance(cb_state, Mapping) else None, getattr(cb, "monitor", None)
        if old is not None and new is not None and old != new:
            lines.append(f"resume: {key} monitored {old} in {source} (best {cb_state.get('best')}), this run monitors "
                         f"{new}: its state is reset (best.pt will hold the best {new} from here on)")  # fmt: skip
            continue
        cb.load_state_dict(cb_state)
    orphans = [k for k, v in stored.items() if k not in keyed and v is not None]
    if orphans:
        lines.append(f"resume: {source} holds the state of {', '.join(orphans)}, which this run does not have: "
                     "not restored")  # fmt: skip
    return lines


def _hyperparameters(trainer: Trainer) -> dict[str, Any]:
    return {
        "lr": trainer.lr,
        "weight_decay": trainer.weight_decay,
        "optimizer": trainer.optimizer_name if isinstance(trainer.optimizer_name, str) else None,
        "scheduler": trainer.scheduler_name,
        "warmup_iters": trainer.warmup_iters,
    }


def _say_changed_hyperparameters(trainer: Trainer, stored: Any, source: str) -> None:
    """One line naming what this run asks for that differs from what the checkpoint's optimizer and schedule
    were built with: the checkpoint's values are used (its optimizer state holds the lr and weight decay of
    each group, and its schedule continues), so resume stays exact."""
    if not isinstance(stored, Mapping) or not trainer.is_main_process:
        return
    current = _hyperparameters(trainer)
    changed = [f"{k} {stored[k]!r} (not {current[k]!r})" for k in current if k in stored and stored[k] != current[k]]
    if changed:
        _log.info(
            f"resume: {source} continues with its own {', '.join(changed)}: the optimizer and schedule resume "
            "exactly as saved. To train with the new values, start a new run from its weights "
            f"(model weights={source})"
        )


def check_mid_epoch_position(state: Mapping[str, Any], batch_size: int, world_size: int, source: str) -> None:
    """Refuse to resume a mid-epoch checkpoint (``batches_done > 0``) with another ``batch_size`` or number of
    processes: each rank skips its first ``batches_done * batch_size`` samples of the epoch's order, which
    is split across ``world_size`` ranks, so either change would skip the wrong samples. An end-of-epoch
    checkpoint resumes with any; a checkpoint that does not store them (older segkit) is not checked.

    Raises:
        CheckpointError: naming ``source``, the stored and the current values, and the remedy.
    """
    if not int(state.get("batches_done", 0)):
        return
    stored = {"batch_size": state.get("batch_size"), "processes": state.get("world_size")}
    current = {"batch_size": batch_size, "processes": world_size}
    changed = [f"{k} {stored[k]} -> {current[k]}" for k in stored if stored[k] is not None and stored[k] != current[k]]
    if changed:
        raise CheckpointError(
            f"{source} was written in the middle of epoch {int(state['epoch']) + 1} (after batch "
            f"{int(state['batches_done'])}) with batch_size {stored['batch_size']} on {stored['processes']} "
            f"process(es); this run has batch_size {batch_size} on {world_size} ({'; '.join(changed)}), so it "
            f"cannot tell which samples of the epoch were already seen. Resume with batch_size "
            f"{stored['batch_size']} and {stored['processes']} process(es), or from an end-of-epoch checkpoint "
            f"(epoch_XXX.pt with keep_last, or last.pt written at an epoch's end), which resumes with any."
        )


def rng_state_for_rank(state: Mapping[str, Any], rank: int, world_size: int) -> dict[str, Any] | None:
    """The RNG state a process of ``rank`` (of ``world_size``) resumes from: its own when the checkpoint
    holds one per rank for that world size, else the saving process's (``state["rng"]``), else None."""
    ranks = state.get("rng_ranks")
    if ranks and len(ranks) == world_size:
        return ranks[rank]
    return state.get("rng")


def gather_rng_states(trainer: Trainer) -> None:
    """Under DDP, collect every rank's RNG state on every rank (a collective: call it on all ranks, at the
    moment a checkpoint is about to be written). The ranks' streams differ when the model draws random
    numbers in amounts that depend on its data (Mask R-CNN's RoI sampling), so rank 0's state alone would
    not resume rank 1 exactly. Kept for the current ``global_step`` only."""
    if trainer.dist.enabled:
        from segkit.distributed import all_gather_objects

        state = trainer.state
        state.rng_ranks = (state.global_step, all_gather_objects(get_rng_state()))
        # The partial epoch loss of every rank, summed: rank 0's alone would be part of it.
        total = state.epoch_loss.detach().clone()
        torch.distributed.all_reduce(total)
        state.gathered_epoch_loss = (state.position, total.cpu())


def truncate_jsonl(path: Path, step: int) -> None:
    """Drop the rows logged after ``step`` (by the run that was interrupted) so none is duplicated."""
    if not path.is_file():
        return
    import json

    kept = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:  # a row torn by the kill that interrupted the run
            continue
        if isinstance(row, dict) and int(row.get("step", 0)) <= step:
            kept.append(line + "\n")
    path.write_text("".join(kept))


class TrainingStateMethods:
    """The Trainer's state and checkpoint methods: ``state_dict``/``load_state_dict`` (the whole training state by
    name), atomic writes of ``last.pt`` / numbered files with the config beside them, and ``fit(resume=...)``'s
    restore. Mixed into the ``Trainer``."""

    config: dict[str, Any] | None
    out_dir: Path
    is_main_process: bool
    state: TrainState

    @property
    def module(self) -> nn.Module:  # the Trainer's model without its DDP wrapper
        raise NotImplementedError

    def state_dict(self, metrics: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The whole training state as plain data (loadable with ``weights_only=True``), each part under its own
        name: ``model``, ``optimizer``, ``scheduler``, ``scaler``, ``ema``, the ``TrainState`` entries (``epoch``,
        ``global_step``, ``batches_done``, ``epoch_loss``, ``nonfinite``, ``rng_ranks``), ``rng``, ``callbacks``
        (by ``callback_key``), ``time_budget``, and what serving needs (``model_config``, ``class_names``,
        ``normalization``, ...). ``metrics`` are stored under ``metrics``."""
        return training_state(self, metrics)  # type: ignore[arg-type]  # (mixed into the Trainer)

    def load_state_dict(self, state: dict[str, Any], source: str = "checkpoint") -> None:
        """Restore what ``state_dict`` returned, part by part by name (the optimizer and scheduler must exist:
        ``fit`` builds them first). ``source`` names the file in messages."""
        restore_training_state(self, state, source)  # type: ignore[arg-type]

    def checkpoint_state(self, metrics: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """``state_dict(metrics)`` (the earlier name)."""
        return self.state_dict(metrics)

    def save_checkpoint(
        self, path: str | Path, metrics: Mapping[str, Any] | None = None, previous: str | Path | None = None
    ) -> Path:
        """Atomically write the checkpoint to ``path`` and the resolved config beside it.

        Args:
            path: destination file.
            metrics: stored under ``metrics``.
            previous: where an existing ``path`` is moved once the new file is complete (or None).

        Raises:
            CheckpointError: the write failed (e.g. disk full); the message names the file, and any
                previous file at ``path`` is left intact.
        """
        path = save_checkpoint(self.state_dict(metrics), path, previous=previous)
        if self.config is not None and not (path.parent / "config.yaml").exists():
            from segkit.config import save_config

            save_config(self.config, path.parent / "config.yaml")
        return path

    def save_last(self, metrics: Mapping[str, Any] | None = None) -> Path:
        """Write ``last.pt``, keeping the previous one as ``last.prev.pt`` (a fallback for resume)."""
        return self.save_checkpoint(self.out_dir / "last.pt", metrics, previous=self.out_dir / "last.prev.pt")

    def load_training_state(self, resume: str | Path) -> None:
        """Restore everything ``state_dict`` saved (called by ``fit(resume=...)``).

        Args:
            resume: ``"last"`` (with fallback, see ``find_resume_checkpoint``), ``"auto"`` (like
                ``"last"``, but a run folder without any checkpoint starts a new run: the same command
                line serves the first start and every elastic restart) or a checkpoint path.
        """
        if str(resume) == "auto":
            names = ("last.pt", "last.prev.pt")
            if not any((self.out_dir / n).exists() for n in names) and not any(self.out_dir.glob("epoch_*.pt")):
                self.state.resumed_step = 0  # rows a dead attempt logged before its first checkpoint are dropped
                if self.is_main_process:
                    _log.info(f"resume='auto': no checkpoint in {self.out_dir}, starting a new run")
                return
            resume = "last"
        path, state = find_resume_checkpoint(resume, self.out_dir)
        self.load_state_dict(state, str(path))
        self.state.resumed_step = self.state.global_step
        if self.is_main_process:
            e, b, s = self.state.position
            _log.info(f"resuming from {path}: epoch {e + 1}, batch {b}, step {s}")

    def weights_finite(self) -> bool:
        """True when every parameter is finite (checked before writing ``best.pt``)."""
        return all(bool(torch.isfinite(p).all()) for p in self.module.parameters())
