"""Instance samples: image, semantic mask and instance masks transformed together, and their detection target."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from segkit.datasets.base import to_sample
from segkit.datasets.shapes import instance_target

__all__ = ["instance_sample"]


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
