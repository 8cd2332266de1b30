"""The dataset contract shared by every loader, and the collate functions of both tasks."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

__all__ = [
    "SegmentationDataset",
    "collate_instances",
    "collate_semantic",
    "padded_groups",
    "predict_unpadded",
    "to_device",
    "to_sample",
    "training_targets",
]

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
            # The int64 conversion copies, so a read-only decoded array (PIL's) is never shared with the tensor.
            torch.from_numpy(np.asarray(mask, dtype=np.int64)) if not isinstance(mask, torch.Tensor) else mask.long()
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


def to_device(value: Any, device: torch.device | str) -> Any:
    """Move tensors (also inside lists and dicts of a collated batch) to ``device``."""
    if isinstance(value, torch.Tensor):
        return value.to(device, non_blocking=torch.device(device).type == "cuda")
    if isinstance(value, list):
        return [to_device(v, device) for v in value]
    if isinstance(value, dict):
        return {k: to_device(v, device) for k, v in value.items()}
    return value


def collate_semantic(batch: list[dict[str, Any]], *, ignore_index: int = 255) -> dict[str, Any]:
    """Stack semantic samples: ``image`` ``(N, 3, H, W)``, ``mask`` ``(N, H, W)``, ``path`` list.

    Every other tensor key (e.g. a precomputed ``dist_map``) is stacked too; other values become lists.
    The instance ``target`` is dropped (use ``collate_instances`` for the instance task). Files skipped
    with ``on_bad_sample="skip"`` are gathered from every sample under ``bad_samples`` (see ``BadSampleLog``).

    Images of different sizes are padded at the bottom and right to the largest height and width of the
    batch: the image with 0, the mask with ``ignore_index`` (so padding never counts in a loss or a
    metric), every other per-pixel tensor (one whose last two dimensions are the sample's image size,
    e.g. ``dist_map``) with 0. ``image_sizes`` holds each sample's original ``(h, w)`` and ``padded``
    says whether padding happened; ``padded_groups`` splits a padded batch back into equal sizes.

    Args:
        batch: sample dicts (see ``SegmentationDataset``).
        ignore_index: the mask value of padded pixels (the dataset's ``ignore_index``; pass it with
            ``functools.partial(collate_semantic, ignore_index=...)``).

    Returns:
        The batch dict, plus ``image_sizes`` int64 ``(N, 2)`` and ``padded`` (bool).

    Raises:
        ValueError: a tensor key that is not per-pixel has different shapes in the batch.
    """
    out: dict[str, Any] = _bad_samples(batch)
    sizes = [tuple(b["image"].shape[-2:]) for b in batch]
    padded = len(set(sizes)) > 1
    for key, value in batch[0].items():
        if key in ("target", "bad_samples"):
            continue
        values = [b[key] for b in batch]
        if not isinstance(value, torch.Tensor):
            out[key] = values
        elif padded:
            out[key] = _pad_stack(key, values, sizes, ignore_index if key == "mask" else 0)
        else:
            out[key] = _stack(values)
    out["image_sizes"] = torch.tensor(sizes, dtype=torch.int64).reshape(len(batch), 2)
    out["padded"] = padded
    return out


def padded_groups(image_sizes: torch.Tensor) -> list[tuple[int, int, torch.Tensor]]:
    """Split a batch by original image size, to run a model on each group without the padding.

    Args:
        image_sizes: int64 ``(N, 2)`` ``(h, w)`` per sample (``collate_semantic``'s ``image_sizes``).

    Returns:
        ``[(h, w, indices), ...]``: one entry per distinct size, ``indices`` an int64 tensor of the
        samples of that size (on ``image_sizes``' device), in order of first appearance.
    """
    groups: dict[tuple[int, int], list[int]] = {}
    for i, (h, w) in enumerate(image_sizes.tolist()):
        groups.setdefault((int(h), int(w)), []).append(i)
    return [(h, w, torch.tensor(idx, device=image_sizes.device)) for (h, w), idx in groups.items()]


def predict_unpadded(predict: Callable[[torch.Tensor], torch.Tensor], batch: Mapping[str, Any]) -> torch.Tensor:
    """Class maps of a padded batch, each computed on its image alone (without the padding).

    The images of each size group (``padded_groups``) are cropped to their size and predicted together,
    and the maps are pasted into a ``(N, H, W)`` output whose padding is 0 (the mask there is
    ``ignore_index``, so metrics skip it). The prediction on the real pixels is then the same whatever
    else is in the batch, as at batch size 1.

    Args:
        predict: images ``(n, C, h, w)`` -> class maps ``(n, h, w)`` int64.
        batch: a collated batch with ``image`` ``(N, C, H, W)`` and ``image_sizes`` ``(N, 2)``.

    Returns:
        ``(N, H, W)`` int64 class maps.
    """
    images = batch["image"]
    out = torch.zeros((images.shape[0], *images.shape[-2:]), dtype=torch.int64, device=images.device)
    for h, w, idx in padded_groups(batch["image_sizes"]):
        idx = idx.to(images.device)
        out[idx, :h, :w] = predict(images[idx, :, :h, :w]).to(torch.int64)
    return out


def _new_batch(elem: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """An uninitialised contiguous tensor like ``elem``; in a DataLoader worker, in shared memory, so the
    batch reaches the main process without another copy (as ``default_collate`` does)."""
    if get_worker_info() is not None:
        storage = elem._typed_storage()._new_shared(math.prod(shape), device=elem.device)
        return elem.new(storage).resize_(*shape)
    return torch.empty(shape, dtype=elem.dtype, device=elem.device)


def _stack(tensors: list[torch.Tensor]) -> torch.Tensor:
    """``torch.stack`` with one copy per element: in a DataLoader worker the batch is written straight into
    shared memory (else sending it to the main process copies it again), and channels-last views (the
    samples' images) are copied into a contiguous ``(N, C, H, W)`` batch.

    Args:
        tensors: same shape and dtype.

    Returns:
        ``(len(tensors), *shape)``, contiguous.
    """
    elem = tensors[0]
    out = _new_batch(elem, (len(tensors), *elem.shape)) if get_worker_info() is not None else None
    if elem.is_contiguous():
        return torch.stack(tensors, 0, out=out)
    # torch.stack of strided views runs a slow generic kernel; copy_ into each slot is about twice as fast.
    out = out if out is not None else _new_batch(elem, (len(tensors), *elem.shape))
    for i, t in enumerate(tensors):
        out[i].copy_(t)
    return out


def _pad_stack(key: str, tensors: list[torch.Tensor], sizes: list[tuple[int, ...]], fill: float) -> torch.Tensor:
    """Stack per-pixel tensors of different sizes into one ``(N, ..., H_max, W_max)`` batch filled with
    ``fill`` (one preallocated output, each sample copied into its top-left corner); other tensors must
    agree in shape and are stacked."""
    per_pixel = all(t.dim() >= 2 and tuple(t.shape[-2:]) == s for t, s in zip(tensors, sizes))
    if not per_pixel:
        shapes = {tuple(t.shape) for t in tensors}
        if len(shapes) == 1:
            return _stack(tensors)
        raise ValueError(
            f"collate_semantic: {key!r} has shapes {sorted(shapes)} in one batch and is not per-pixel (its last "
            f"two dimensions are not the image size); give every sample the same {key!r} shape, or crop/resize "
            "the images to one size (image_size= or crop transforms)"
        )
    lead = {tuple(t.shape[:-2]) for t in tensors}
    if len(lead) > 1:
        raise ValueError(f"collate_semantic: {key!r} has different leading shapes {sorted(lead)} in one batch")
    height, width = max(s[0] for s in sizes), max(s[1] for s in sizes)
    out = _new_batch(tensors[0], (len(tensors), *tensors[0].shape[:-2], height, width))
    out.fill_(fill)
    for i, (t, (h, w)) in enumerate(zip(tensors, sizes)):
        out[i, ..., :h, :w].copy_(t)
    return out


def collate_instances(batch: list[dict[str, Any]], *, ignore_index: int = 255) -> dict[str, Any]:
    """Collate instance samples as torchvision detection expects: lists of images and targets.

    A semantic ``mask`` (when the samples carry one) is stacked, padded with ``ignore_index`` to the
    largest size when the images differ in size.
    """
    out: dict[str, Any] = {
        "image": [b["image"] for b in batch],
        "target": [b["target"] for b in batch],
        "path": [b["path"] for b in batch],
        **_bad_samples(batch),
    }
    if "mask" in batch[0]:
        masks = [b["mask"] for b in batch]
        sizes = [tuple(m.shape[-2:]) for m in masks]
        out["mask"] = _pad_stack("mask", masks, sizes, ignore_index) if len(set(sizes)) > 1 else _stack(masks)
    return out


def training_targets(targets: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The detection targets a model trains on: each target without its crowd instances (``iscrowd == 1``).

    COCO crowd regions (``iscrowd=1``, usually RLE masks over a group of objects) are not objects to detect:
    torchvision's detection references drop them from the training targets. Evaluation keeps them, as
    ``iscrowd=1`` ground truth that COCOeval does not count as a miss and whose matches it ignores, so
    validation uses the targets unchanged. An image whose annotations are all crowd gets empty targets
    (``boxes`` ``(0, 4)``, ``masks`` ``(0, H, W)``), which torchvision's detectors accept.

    Args:
        targets: per image a detection dict (``boxes`` ``(K, 4)``, ``labels`` ``(K,)``, ``masks`` ``(K, H, W)``,
            ``area``, ``iscrowd`` int ``(K,)``, ``image_id``, ...), on any device.

    Returns:
        New dicts: every tensor whose first dimension is the instance count K keeps only the rows with
        ``iscrowd == 0``; the other entries (``image_id``) are unchanged. A target without ``iscrowd`` or
        without crowd instances is returned as a shallow copy (no tensor copied).
    """
    out = []
    for target in targets:
        crowd = target.get("iscrowd")
        if not isinstance(crowd, torch.Tensor) or crowd.numel() == 0:
            out.append(dict(target))
            continue
        count = crowd.shape[0]
        keep = (crowd == 0).nonzero().squeeze(1)  # one index per image, then no sync per field
        if len(keep) == count:
            out.append(dict(target))
            continue
        out.append(
            {
                k: v.index_select(0, keep) if isinstance(v, torch.Tensor) and v.dim() and v.shape[0] == count else v
                for k, v in target.items()
            }
        )
    return out


def _bad_samples(batch: list[dict[str, Any]]) -> dict[str, Any]:
    """``{"bad_samples": [(path, reason), ...]}`` gathered from the samples, or ``{}`` if none were skipped."""
    items = [item for b in batch for item in b.get("bad_samples", ())]
    return {"bad_samples": items} if items else {}
