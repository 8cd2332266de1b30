"""The dataset contract shared by every loader, and the collate functions of both tasks."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

__all__ = ["SegmentationDataset", "collate_instances", "collate_semantic", "to_sample"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class SegmentationDataset(Dataset):
    """Base class of segkit datasets: metadata plus the sample format.

    Subclasses set ``num_classes``, ``class_names``, ``palette`` (``(num_classes, 3)`` uint8 RGB),
    ``ignore_index`` and ``task`` ("semantic" or "instance"), and implement ``__len__`` and
    ``__getitem__`` returning ``to_sample(...)`` dicts:

    - ``image``: float32 tensor ``(3, H, W)``, normalised by the transform (a channels-last view of the
      transform's ``(H, W, 3)`` output: the collate makes the one contiguous copy; call ``.contiguous()``
      before ``.view`` on a single sample);
    - ``mask``: int64 tensor ``(H, W)`` with values in ``[0, num_classes)`` or ``ignore_index``;
    - ``target`` (instance task): dict with ``boxes`` float ``(K, 4)`` xyxy, ``labels`` int64 ``(K,)``,
      ``masks`` uint8 ``(K, H, W)``, ``image_id``, ``area``, ``iscrowd``;
    - ``path``: where the image came from (a file path, or a description for generated data).
    """

    num_classes: int
    class_names: Sequence[str]
    palette: np.ndarray
    ignore_index: int = 255
    task: str = "semantic"


def default_palette(num_classes: int, seed: int = 7) -> np.ndarray:
    """Return a ``(num_classes, 3)`` uint8 palette: black for class 0, distinct bright colours after."""
    import colorsys

    colours = [(0, 0, 0)]
    for i in range(1, num_classes):
        h = (i * 0.618033988749895 + seed * 0.1) % 1.0
        r, g, b = colorsys.hsv_to_rgb(h, 0.75, 0.95)
        colours.append((int(r * 255), int(g * 255), int(b * 255)))
    return np.asarray(colours[:num_classes], dtype=np.uint8)


def to_sample(
    image: np.ndarray,
    mask: np.ndarray | None,
    transforms: Callable[..., dict[str, Any]] | None,
    path: str,
    target: dict[str, Any] | None = None,
    normalization: Any = None,
) -> dict[str, Any]:
    """Apply an albumentations-style ``transforms`` and convert to the sample dict.

    Args:
        image: ``(H, W, C)``: uint8 RGB, or any channel count and pixel type with ``normalization``.
        mask: ``(H, W)`` integer labels, or None.
        transforms: callable ``transforms(image=..., mask=...) -> dict`` (an albumentations
            ``Compose``); None normalises only.
        path: stored under ``"path"``.
        target: an instance target (passed through untouched; instance transforms live in
            ``segkit.datasets.transforms``).
        normalization: a ``segkit.datasets.normalization.Normalization`` (raw pixel units), applied
            when ``transforms`` is None or returned an integer image (it did not normalise). None:
            ImageNet statistics for uint8 images, other images as they are.

    Returns:
        The sample dict described in ``SegmentationDataset``.
    """
    raw = transforms is None
    if transforms is not None:
        kwargs: dict[str, Any] = {"image": image}
        if mask is not None:
            kwargs["mask"] = mask
        out = transforms(**kwargs)
        image, mask = out["image"], out.get("mask", mask)
    sample: dict[str, Any] = {"image": _image_tensor(image, normalization, raw), "path": path}
    if mask is not None:
        sample["mask"] = (
            torch.as_tensor(np.asarray(mask), dtype=torch.int64) if not isinstance(mask, torch.Tensor) else mask.long()
        )
    if target is not None:
        sample["target"] = target
    return sample


def _image_tensor(image: Any, normalization: Any = None, raw: bool = False) -> torch.Tensor:
    if isinstance(image, torch.Tensor):
        return image.float()
    arr = np.asarray(image)
    if normalization is not None and (raw or arr.dtype.kind in "ui"):
        arr = normalization.apply(arr)
    elif arr.dtype == np.uint8:
        arr = (arr.astype(np.float32) / 255.0 - np.asarray(IMAGENET_MEAN, np.float32)) / np.asarray(
            IMAGENET_STD, np.float32
        )
    if arr.ndim == 2:
        arr = arr[..., None]
    # A (C, H, W) view of the (H, W, C) array, not a copy: the collate's stacking copy is the only one.
    return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32)).permute(2, 0, 1)


def collate_semantic(batch: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack semantic samples: ``image`` ``(N, 3, H, W)``, ``mask`` ``(N, H, W)``, ``path`` list.

    Every other tensor key (e.g. a precomputed ``dist_map``) is stacked too; other values become lists.
    The instance ``target`` is dropped (use ``collate_instances`` for the instance task). Files skipped
    with ``on_bad_sample="skip"`` are gathered from every sample under ``bad_samples`` (see ``BadSampleLog``).
    """
    out: dict[str, Any] = _bad_samples(batch)
    for key, value in batch[0].items():
        if key in ("target", "bad_samples"):
            continue
        values = [b[key] for b in batch]
        out[key] = _stack(values) if isinstance(value, torch.Tensor) else values
    return out


def _stack(tensors: list[torch.Tensor]) -> torch.Tensor:
    """``torch.stack`` with one copy per element: in a DataLoader worker the batch is written straight into
    shared memory (as ``default_collate`` does; else sending it to the main process copies it again), and
    channels-last views (the samples' images) are copied into a contiguous ``(N, C, H, W)`` batch.

    Args:
        tensors: same shape and dtype.

    Returns:
        ``(len(tensors), *shape)``, contiguous.
    """
    elem = tensors[0]
    out = None
    if get_worker_info() is not None:
        storage = elem._typed_storage()._new_shared(sum(t.numel() for t in tensors), device=elem.device)
        out = elem.new(storage).resize_(len(tensors), *elem.shape)
    if elem.is_contiguous():
        return torch.stack(tensors, 0, out=out)
    # torch.stack of strided views runs a slow generic kernel; copy_ into each slot is about twice as fast.
    out = out if out is not None else torch.empty((len(tensors), *elem.shape), dtype=elem.dtype, device=elem.device)
    for i, t in enumerate(tensors):
        out[i].copy_(t)
    return out


def collate_instances(batch: list[dict[str, Any]]) -> dict[str, Any]:
    """Collate instance samples as torchvision detection expects: lists of images and targets."""
    out: dict[str, Any] = {
        "image": [b["image"] for b in batch],
        "target": [b["target"] for b in batch],
        "path": [b["path"] for b in batch],
        **_bad_samples(batch),
    }
    if "mask" in batch[0]:
        out["mask"] = _stack([b["mask"] for b in batch])
    return out


def _bad_samples(batch: list[dict[str, Any]]) -> dict[str, Any]:
    """``{"bad_samples": [(path, reason), ...]}`` gathered from the samples, or ``{}`` if none were skipped."""
    items = [item for b in batch for item in b.get("bad_samples", ())]
    return {"bad_samples": items} if items else {}
