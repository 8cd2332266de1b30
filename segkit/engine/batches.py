"""What the Trainer decides about its batches: the padding notice and the last batch of an epoch."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

__all__ = ["last_batch_drop", "padding_notice"]


def padding_notice(batch: Mapping[str, Any], ignore_index: int, validation: bool | None = None) -> str:
    """The one line the Trainer prints the first time a batch was padded (see ``collate_semantic``).

    A padded training batch means the training images are not cut to one size, so the line says how to
    (crops or ``image_size=``). A padded validation batch needs nothing: each image is predicted and scored at
    its own size, so the line says only that (training crops do not apply to validation: telling a user who
    set them to set them would be false).

    Args:
        batch: the collated batch (``image`` ``(N, C, H, W)``, ``image_sizes`` ``(N, 2)`` when present).
        ignore_index: the mask value of the padded pixels.
        validation: whether ``batch`` is a validation batch; None reads it from the grad mode (the Trainer
            validates under ``torch.no_grad`` and trains with gradients enabled).

    Returns:
        The line.
    """
    if validation is None:
        validation = not torch.is_grad_enabled()
    height, width = batch["image"].shape[-2:]
    sizes = batch.get("image_sizes")
    spread = ""
    if isinstance(sizes, torch.Tensor) and sizes.numel():
        distinct = {(int(h), int(w)) for h, w in sizes.tolist()}
        spread = f" ({len(distinct)} sizes in this batch)"
    if validation:
        return (
            f"validation images of different sizes in a batch: padded to {height}x{width}{spread} only to batch "
            "them; each image is predicted and scored at its own size, so the padding changes no metric "
            "(nothing to set)"
        )
    return (
        f"training images of different sizes in a batch: padded to {height}x{width}{spread} (image pixels 0, "
        f"mask ignore_index {ignore_index}, not counted by the loss); the training split is not cut to one "
        "size: set crop transforms (data.train.transforms: {crop_size: ...}; --image-size with segkit train "
        "--data) or the dataset's image_size= to train at one size"
    )


def last_batch_drop(samples: int, batch_size: int, model: nn.Module) -> int:
    """How many samples to drop from the end of each epoch: 1 when the last batch would hold a single
    sample and the model has BatchNorm layers (a batch of one fails in training, "Expected more than 1
    value per channel", wherever BatchNorm sees one value per channel, e.g. DeepLab's image pooling),
    else 0. torchvision's references drop every incomplete batch; only the failing case is dropped here.

    Args:
        samples: indices per rank per epoch (equal on every rank: ``ResumableSampler`` pads), so every
            rank decides the same.
        batch_size: samples per batch.
        model: the model (unwrapped).
    """
    if batch_size <= 1 or samples <= 1 or samples % batch_size != 1:
        return 0
    return int(any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()))
