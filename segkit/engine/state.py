"""Training state for exact resume: RNG states, the resumable sampler, checkpoint lookup (EMA: ``ema.py``)."""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from segkit.engine.checkpoint import CheckpointError, load_checkpoint, load_state_dict_checked
from segkit.engine.ema import ModelEMA

if TYPE_CHECKING:
    from segkit.engine.trainer import Trainer

__all__ = [
    "ModelEMA",
    "ResumableSampler",
    "SeededAugmentation",
    "as_dataset",
    "find_resume_checkpoint",
    "gather_rng_states",
    "get_rng_state",
    "resolve_device",
    "restore_training_state",
    "rng_state_for_rank",
    "sample_seed",
    "seed_everything",
    "set_rng_state",
    "to_device",
    "training_state",
    "truncate_jsonl",
]


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def get_rng_state() -> dict[str, Any]:
    """Return the Python, NumPy, torch and CUDA RNG states as plain data (``weights_only``-loadable)."""
    py_version, py_state, py_gauss = random.getstate()
    np_state: tuple[Any, ...] = np.random.get_state(legacy=True)  # type: ignore[assignment]
    state: dict[str, Any] = {
        "python": [py_version, list(py_state), py_gauss],
        "numpy": [np_state[0], torch.from_numpy(np.asarray(np_state[1]).astype(np.int64)), *map(float, np_state[2:])],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the states returned by ``get_rng_state``."""
    version, py_state, gauss = state["python"]
    random.setstate((version, tuple(py_state), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), int(pos), int(has_gauss), float(cached)))
    torch.set_rng_state(state["torch"].cpu())
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The augmentation seed of sample ``index`` in ``epoch`` (a 32-bit mix of the three numbers)."""
    return (seed * 0x9E3779B1 + (epoch + 1) * 0x85EBCA77 + (index + 1) * 0xC2B2AE3D) % 2**32


class SeededAugmentation(Dataset):
    """Makes random augmentation a function of (seed, epoch, sample): reproducible and exactly resumable.

    albumentations' ``Compose`` draws from its own generator, seeded from the OS unless told otherwise
    and advanced in whichever process (main or DataLoader worker) loads the sample, so neither
    ``seed_everything`` nor a checkpoint's RNG states fix it. Fed ``(index, seed)`` keys by a
    ``ResumableSampler(seeded=True)``, this wrapper re-seeds the dataset's ``transforms`` (when it has
    ``set_random_seed``; found also under wrappers that keep the wrapped dataset as ``.dataset``) before
    loading each sample; plain integer keys pass through untouched.

    Args:
        dataset: a map-style dataset, typically with a ``transforms`` attribute.
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset
        # The transforms may sit under wrappers (WithDistanceMaps, torch's Subset): follow ``.dataset``.
        inner: Any = dataset
        self.transforms = None
        for _ in range(8):
            if hasattr(getattr(inner, "transforms", None), "set_random_seed"):
                self.transforms = inner.transforms
                break
            inner = getattr(inner, "dataset", None)
            if inner is None:
                break

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: int | tuple[int, int]) -> Any:
        if isinstance(key, tuple):
            index, seed = key
            if self.transforms is not None:
                self.transforms.set_random_seed(seed)
            return self.dataset[index]
        return self.dataset[key]


class ResumableSampler(Sampler[Any]):
    """Deterministic per-epoch order, split across processes, that can start mid-epoch.

    The order of epoch ``e`` is a permutation drawn from ``seed + e`` (or ``range(n)`` without
    shuffling); process ``rank`` takes every ``world_size``-th index like ``DistributedSampler``
    (the list is padded by wrapping so every rank gets the same count when ``pad``). After
    ``set_position(epoch, start)``, iteration skips the first ``start`` indices of this rank, so a
    resumed run sees exactly the batches it had not consumed.

    Args:
        length: dataset size.
        shuffle: permute each epoch.
        seed: base seed of the permutations.
        rank: this process's rank.
        world_size: number of processes.
        pad: pad so all ranks get equally many indices (training); False for validation, so no
            sample is counted twice.
        seeded: yield ``(index, sample_seed(seed, epoch, index))`` pairs for ``SeededAugmentation``
            instead of plain indices.
        drop_tail: indices dropped from the end of this rank's epoch order (after the split, so each
            rank drops as many); the Trainer drops a last batch of one sample for BatchNorm.
    """

    def __init__(
        self,
        length: int,
        shuffle: bool = True,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        pad: bool = True,
        seeded: bool = False,
        drop_tail: int = 0,
    ) -> None:
        self.length = int(length)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.pad = pad
        self.seeded = seeded
        self.drop_tail = int(drop_tail)
        self.epoch = 0
        self.start = 0

    def set_position(self, epoch: int, start: int = 0) -> None:
        """Select the epoch's order and skip its first ``start`` indices (of this rank)."""
        self.epoch, self.start = int(epoch), int(start)

    def _indices(self) -> list[int]:
        if self.shuffle:
            g = torch.Generator()
            g.manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.length, generator=g).tolist()
        else:
            order = list(range(self.length))
        if self.pad and self.world_size > 1 and self.length % self.world_size:
            extra = self.world_size - self.length % self.world_size
            order += (order * (extra // max(1, len(order)) + 1))[:extra]
        order = order[self.rank :: self.world_size]
        return order[: max(0, len(order) - self.drop_tail)]

    def __iter__(self) -> Iterator[Any]:
        indices = self._indices()[self.start :]
        if self.seeded:
            return iter([(i, sample_seed(self.seed, self.epoch, i)) for i in indices])
        return iter(indices)

    def __len__(self) -> int:
        return max(0, len(self._indices()) - self.start)

    def full_length(self) -> int:
        """Indices of this rank in a whole epoch (ignoring the start offset)."""
        return len(self._indices())


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
        "epoch_loss": trainer._epoch_loss.detach().cpu().clone(),
        "nonfinite": [trainer.nonfinite_steps, trainer._consecutive_nonfinite],
        "rng": get_rng_state(),
        "rng_ranks": _rank_rng_states(trainer),
        "metrics": {k: float(v) for k, v in (metrics or {}).items() if isinstance(v, (int, float))},
        "config": trainer.config,
        "task": trainer.task,
        "num_classes": trainer.num_classes,
        "class_names": trainer.class_names,
        "ignore_index": trainer.ignore_index,
        "palette": None if trainer.palette is None else np.asarray(trainer.palette).astype(int).tolist(),
        # Raw-unit per-channel statistics of the training images (Predictor normalises new images with them).
        "normalization": None if (norm := getattr(trainer, "normalization", None)) is None else norm.to_dict(),
        "in_channels": getattr(trainer, "in_channels", None),
        "callbacks": [cb.state_dict() if hasattr(cb, "state_dict") else None for cb in trainer.callbacks],
    }


def restore_training_state(trainer: Trainer, state: dict[str, Any], source: str = "checkpoint") -> None:
    """Load what ``training_state`` saved into a trainer whose optimizer and scheduler exist."""
    load_state_dict_checked(trainer.module, state["model"], source=source)
    trainer.optimizer.load_state_dict(state["optimizer"])
    if trainer.scheduler is not None and state.get("scheduler") is not None:
        trainer.scheduler.load_state_dict(state["scheduler"])
    if trainer.scaler is not None and state.get("scaler") is not None:
        trainer.scaler.load_state_dict(state["scaler"])
    if trainer.ema is not None and state.get("ema") is not None:
        trainer.ema.load_state_dict(state["ema"])
    for cb, cb_state in zip(trainer.callbacks, state.get("callbacks") or []):
        if cb_state is not None and hasattr(cb, "load_state_dict"):
            cb.load_state_dict(cb_state)
    trainer.epoch, trainer.global_step = int(state["epoch"]), int(state["global_step"])
    trainer.batches_done = int(state.get("batches_done", 0))
    if "epoch_loss" in state:
        trainer._epoch_loss = state["epoch_loss"].to(trainer.device)
    trainer.nonfinite_steps, trainer._consecutive_nonfinite = state.get("nonfinite", [0, 0])
    rng = rng_state_for_rank(state, trainer.dist.rank, trainer.dist.world_size)
    if rng is not None:
        set_rng_state(rng)


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
        from segkit.engine.distributed import all_gather_objects

        trainer._rng_ranks = (trainer.global_step, all_gather_objects(get_rng_state()))


def _rank_rng_states(trainer: Trainer) -> list[dict[str, Any]] | None:
    gathered = trainer._rng_ranks
    if gathered is None or gathered[0] != trainer.global_step:
        return None
    return gathered[1]


def to_device(value: Any, device: torch.device | str) -> Any:
    """Move tensors (also inside lists and dicts) to ``device``."""
    if isinstance(value, torch.Tensor):
        return value.to(device, non_blocking=torch.device(device).type == "cuda")
    if isinstance(value, list):
        return [to_device(v, device) for v in value]
    if isinstance(value, dict):
        return {k: to_device(v, device) for k, v in value.items()}
    return value


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


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; other strings as ``torch.device``."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def as_dataset(data: Dataset | str | None, split: str) -> Dataset | None:
    """A dataset object, or one built by name for ``split``."""
    from segkit.datasets import build_dataset

    if data is None or isinstance(data, Dataset):
        return data
    if isinstance(data, str):
        return build_dataset(data, split=split)
    if isinstance(data, Iterable):
        return data
    raise TypeError(f"expected a Dataset or a dataset name, got {type(data).__name__}")
