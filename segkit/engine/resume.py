"""Training-state save and restore for exact resume: what a checkpoint holds, where resume finds it,
the per-rank RNG states and partial epoch loss, and the metrics rows an interrupted run logged after its
checkpoint."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from segkit.checkpoint import CheckpointError, load_checkpoint, load_state_dict_checked
from segkit.engine.rng import get_rng_state, set_rng_state
from segkit.models import model_config

if TYPE_CHECKING:
    from segkit.engine.trainer import Trainer

__all__ = [
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
    """The plain-data checkpoint of a trainer (see ``Trainer.checkpoint_state``)."""
    return {
        "model": trainer.module.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "scheduler": trainer.scheduler.state_dict() if trainer.scheduler is not None else None,
        "scaler": trainer.scaler.state_dict() if trainer.scaler is not None else None,
        "ema": trainer.ema.state_dict() if trainer.ema is not None else None,
        "epoch": trainer.epoch,
        "global_step": trainer.global_step,
        "batches_done": trainer.batches_done,
        # The sample position of a mid-epoch checkpoint is batches_done * batch_size on each of world_size ranks.
        "batch_size": trainer.batch_size,
        "world_size": trainer.dist.world_size,
        "epoch_loss": _epoch_loss_total(trainer),
        "nonfinite": [trainer.nonfinite_steps, trainer._consecutive_nonfinite],
        "rng": get_rng_state(),
        "rng_ranks": _rank_rng_states(trainer),
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
            print(line, flush=True)
    trainer.epoch, trainer.global_step = int(state["epoch"]), int(state["global_step"])
    trainer.time_budget.load_state_dict(state.get("time_budget"), trainer)  # after the scheduler: sets its length
    trainer.batches_done = int(state.get("batches_done", 0))
    if "epoch_loss" in state:
        # The stored (sum, count) is the whole partial epoch's, of every rank: rank 0 carries it, the others
        # restart from zero, and the all-reduce at the epoch's end adds them up once.
        total = state["epoch_loss"].to(trainer.device)
        trainer._epoch_loss = total if trainer.dist.rank == 0 else torch.zeros_like(total)
    trainer.nonfinite_steps, trainer._consecutive_nonfinite = state.get("nonfinite", [0, 0])
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
        stored = {f"callback {i + 1} (by position)": v for i, v in enumerate(stored)}
        first = stored.pop("callback 1 (by position)")
        if isinstance(first, Mapping) and set(first) == {"best"}:
            stored = {"ModelCheckpoint": first, **stored}
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
        print(f"resume: {source} continues with its own {', '.join(changed)}: the optimizer and schedule resume "
              "exactly as saved. To train with the new values, start a new run from its weights "
              f"(model weights={source})", flush=True)  # fmt: skip


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

        trainer._rng_ranks = (trainer.global_step, all_gather_objects(get_rng_state()))
        # The partial epoch loss of every rank, summed: rank 0's alone would be part of it.
        total = trainer._epoch_loss.detach().clone()
        torch.distributed.all_reduce(total)
        trainer._gathered_epoch_loss = (_position(trainer), total.cpu())


def _position(trainer: Trainer) -> tuple[int, int, int]:
    return trainer.epoch, trainer.batches_done, trainer.global_step


def _epoch_loss_total(trainer: Trainer) -> torch.Tensor:
    """The (sum, count) of the current epoch's losses on every rank: the total gathered for this position
    under DDP, else this process's own."""
    gathered = trainer._gathered_epoch_loss
    if gathered is not None and gathered[0] == _position(trainer):
        return gathered[1].clone()
    return trainer._epoch_loss.detach().cpu().clone()


def _rank_rng_states(trainer: Trainer) -> list[dict[str, Any]] | None:
    gathered = trainer._rng_ranks
    if gathered is None or gathered[0] != trainer.global_step:
        return None
    return gathered[1]


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
