"""The resumable, shardable training sampler and per-sample seeding of augmentation (exact resume)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import Dataset, Sampler

__all__ = ["ResumableSampler", "SeededAugmentation", "sample_seed"]


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
