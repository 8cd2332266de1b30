"""Checkpoint files: atomic writes, safe (``weights_only``) loading, and clear errors."""

from __future__ import annotations

import os
import pickle
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = [
    "CheckpointError",
    "check_writable_dir",
    "load_checkpoint",
    "load_state_dict_checked",
    "mismatch_report",
    "model_weights",
    "save_checkpoint",
]

FORMAT = "segkit-checkpoint"


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, truncated, unsafe or does not fit the model; the message names the file."""


def check_writable_dir(folder: str | Path) -> None:
    """Create ``folder`` if needed and check that a file can be written in it (called before training).

    Raises:
        CheckpointError: the folder cannot be created or written (read-only, a path under a regular
            file, no permission, disk full); the message names it.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".segkit-write-test.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise CheckpointError(f"run folder {folder} is not writable: {exc.strerror or exc}") from None


def save_checkpoint(state: Mapping[str, Any], path: str | Path, previous: str | Path | None = None) -> Path:
    """Write ``state`` to ``path`` atomically: a temporary file in the same folder, fsync, rename.

    A crash or a failed write (disk full) leaves any previous file at ``path`` intact.

    Args:
        state: plain data (tensors, numbers, strings, lists, dicts) so ``weights_only`` loading works.
        path: destination file.
        previous: if given, an existing ``path`` is renamed to this once the new file is complete
            (``last.pt`` -> ``last.prev.pt``), so a failed write never leaves ``path`` missing.

    Returns:
        The path written.

    Raises:
        CheckpointError: the folder cannot be written (the message names it).
    """
    path = Path(path)
    payload = {"format": FORMAT, **state}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise CheckpointError(f"cannot write checkpoint to {path.parent}: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(payload, fh)
            fh.flush()
            os.fsync(fh.fileno())
        if previous is not None and path.exists():
            os.replace(path, previous)
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise CheckpointError(f"cannot write checkpoint {path}: {exc.strerror or exc}") from exc
        raise
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``torch.load(weights_only=True)``: no code in the file is run.

    Args:
        path: a segkit checkpoint, or a plain state dict file.
        map_location: where tensors are loaded.

    Returns:
        The stored dict. A plain state dict is returned as ``{"model": state_dict}``.

    Raises:
        CheckpointError: missing, empty, truncated or corrupt file, or one that needs arbitrary
            code to unpickle (refused); the message names the file and the reason.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes): an interrupted write?")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"refused to load {path}: it holds objects that only a full unpickle (which can run code) "
            f"could build; segkit loads checkpoints with weights_only=True. Details: {str(exc).splitlines()[0]}"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt: {str(exc).splitlines()[0]}") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"checkpoint {path}: expected a dict, found {type(obj).__name__}")
    if obj.get("format") != FORMAT:
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return {"model": obj}
        if "state_dict" in obj and isinstance(obj["state_dict"], dict):
            return {"model": obj["state_dict"]}
    return obj


def mismatch_report(own: Mapping[str, torch.Tensor], state_dict: Mapping[str, torch.Tensor]) -> str:
    """Describe how ``state_dict`` fails to fit a model whose state dict is ``own``; "" when it fits exactly.

    Returns:
        Up to 5 shape mismatches, missing keys and unexpected keys each, joined with `` | ``.
    """
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    shapes = [
        f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state_dict and tuple(state_dict[k].shape) != tuple(own[k].shape)
    ]
    parts = []
    if shapes:
        parts.append(f"{len(shapes)} shape mismatches, first: " + "; ".join(shapes[:5]))
    if missing:
        parts.append(f"{len(missing)} keys missing from the checkpoint, first: {', '.join(missing[:5])}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys, first: {', '.join(unexpected[:5])}")
    return " | ".join(parts)


def load_state_dict_checked(
    model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str = "checkpoint"
) -> None:
    """Load ``state_dict`` into ``model`` strictly, or raise a readable mismatch report.

    Raises:
        CheckpointError: listing up to 5 missing keys, unexpected keys and shape mismatches.
    """
    problems = mismatch_report(model.state_dict(), state_dict)
    if problems:
        raise CheckpointError(f"{source} does not fit this model (another architecture or class count?): {problems}")
    model.load_state_dict(state_dict)


def model_weights(checkpoint: Mapping[str, Any], key: str | None = None, source: str = "checkpoint") -> Any:
    """The weights a checkpoint serves: the one rule every consumer (``weights=``, ``Predictor``, ``segkit
    evaluate``, ``export``) follows, so the model chosen as best is the model served.

    Args:
        checkpoint: as returned by ``load_checkpoint``.
        key: ``"model"`` (the trained weights) or ``"ema"`` (their moving average); None: ``"ema"`` when
            the checkpoint holds EMA weights (validation and ``best.pt`` were chosen with them), else ``"model"``.
        source: the file, for messages.

    Returns:
        The state dict.

    Raises:
        CheckpointError: ``key`` names weights the checkpoint does not hold.
    """
    if key is None:
        key = "ema" if checkpoint.get("ema") else "model"
    weights = checkpoint.get(key)
    if not isinstance(weights, Mapping) or not weights:
        held = [k for k in ("model", "ema") if checkpoint.get(k)]
        raise CheckpointError(f"{source} holds no {key!r} weights (it has: {', '.join(held) or 'none'})")
    return weights
