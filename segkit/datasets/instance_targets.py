"""Instance samples: image, semantic mask and instance masks transformed together, and their detection target."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from segkit.datasets.base import to_sample

__all__ = ["instance_sample", "instance_target"]


def instance_sample(
    image: np.ndarray,
    mask: np.ndarray | None,
    inst: dict[str, Any],
    transforms: Callable[..., dict[str, Any]] | None,
    path: str,
    image_id: int,
) -> dict[str, Any]:
    """Transform image, semantic mask and instance masks together and build the detection target.

    Instance masks are 0/1; after the transform an instance is the pixels equal to 1 (padding
    filled with ``ignore_index`` is not part of it), so boxes are recomputed from the transformed
    masks and instances that left the crop are dropped, keeping boxes, labels, masks, ``area``
    and ``iscrowd`` consistent. Without a transform, given ``boxes`` (e.g. COCO's) are kept.
    """
    masks: list[np.ndarray] = list(inst["masks"])
    labels = list(inst["labels"])
    iscrowd = list(inst.get("iscrowd", [0] * len(labels)))
    boxes = inst.get("boxes")
    if transforms is not None:
        kwargs: dict[str, Any] = {"image": image}
        if mask is not None:
            kwargs["mask"] = mask
        if masks:
            kwargs["masks"] = masks
        out = transforms(**kwargs)
        image, mask = out["image"], out.get("mask", mask)
        masks = [np.asarray(m) == 1 for m in out.get("masks", [])]
        boxes = None
    else:
        masks = [np.asarray(m) == 1 for m in masks]
    keep = [i for i, m in enumerate(masks) if m.any()] if boxes is None else list(range(len(masks)))
    masks_k, labels_k = [masks[i] for i in keep], [labels[i] for i in keep]
    if not masks_k:
        # No instance (none annotated, or all left the crop): an all-zero mask keeps the (0, H, W) shape.
        h, w = np.asarray(image).shape[:2] if not isinstance(image, torch.Tensor) else image.shape[-2:]
        masks_k, labels_k = [np.zeros((h, w), bool)], [0]
    target = instance_target(masks_k, labels_k, image_id)
    if boxes is not None and keep:
        # instance_target drops empty masks; given boxes are kept only where masks are not empty.
        nonempty = [i for i in keep if masks[i].any()]
        target["boxes"] = torch.as_tensor(np.asarray(boxes, np.float32)[nonempty].reshape(-1, 4))
        target["iscrowd"] = torch.as_tensor([iscrowd[i] for i in nonempty], dtype=torch.int64)
    else:
        target["iscrowd"] = torch.as_tensor([iscrowd[i] for i in keep if masks[i].any()], dtype=torch.int64)
    return to_sample(image, mask, None, path, target=target)


def instance_target(masks: list[np.ndarray], labels: list[int], image_id: int) -> dict[str, torch.Tensor]:
    """Build a torchvision detection target from per-instance binary masks (empty masks dropped).

    Args:
        masks: ``(H, W)`` arrays, nonzero = object.
        labels: class index of each mask.
        image_id: stored as ``image_id``.

    Returns:
        Dict with ``boxes`` float32 ``(K, 4)`` xyxy (``x2``/``y2`` exclusive pixel edges), ``labels`` int64,
        ``masks`` uint8 ``(K, H, W)``, ``image_id`` int64 scalar, ``area`` float32, ``iscrowd`` int64 zeros.
    """
    keep = [i for i, m in enumerate(masks) if np.any(m)]
    if keep:
        stack = np.stack([np.asarray(masks[i]) != 0 for i in keep])
        rows: np.ndarray = np.asarray(stack.any(axis=2))
        cols: np.ndarray = np.asarray(stack.any(axis=1))
        y1 = rows.argmax(axis=1)
        y2 = rows.shape[1] - rows[:, ::-1].argmax(axis=1)
        x1 = cols.argmax(axis=1)
        x2 = cols.shape[1] - cols[:, ::-1].argmax(axis=1)
        boxes = np.stack([x1, y1, x2, y2], axis=1).astype(np.float32)
        masks_t = torch.from_numpy(stack.astype(np.uint8))
        area = torch.from_numpy(stack.sum(axis=(1, 2)).astype(np.float32))
    else:
        h, w = masks[0].shape if masks else (0, 0)
        boxes = np.zeros((0, 4), np.float32)
        masks_t = torch.zeros((0, h, w), dtype=torch.uint8)
        area = torch.zeros((0,), dtype=torch.float32)
    return {
        "boxes": torch.from_numpy(boxes),
        "labels": torch.as_tensor([labels[i] for i in keep], dtype=torch.int64),
        "masks": masks_t,
        "image_id": torch.tensor(image_id, dtype=torch.int64),
        "area": area,
        "iscrowd": torch.zeros((len(keep),), dtype=torch.int64),
    }
