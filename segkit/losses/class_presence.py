"""Class-presence loss for image-level heads (smp ``aux_params``): BCE on the classes present in the mask."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ClassPresenceLoss", "class_presence", "class_presence_loss"]


def class_presence(target: torch.Tensor, num_classes: int, ignore_index: int = 255) -> torch.Tensor:
    """Which classes each mask holds: the multi-hot target of an image-level classification head.

    Computed with one ``scatter`` on the flattened masks (no loop over images or pixels). Ignored pixels
    count for no class.

    Args:
        target: ``(N, H, W)`` int64 labels in ``[0, num_classes)`` or ``ignore_index``.
        num_classes: K, the classes of the head.
        ignore_index: label of pixels that are no class.

    Returns:
        ``(N, K)`` float32, 1.0 where class c has at least one pixel in image n, else 0.0.

    Raises:
        ValueError: the target is not ``(N, H, W)`` int64, or (checked on the CPU only, where it costs no
            device sync) holds a label outside ``[0, K)`` that is not ``ignore_index``.
    """
    if target.dim() != 3 or target.dtype != torch.int64:
        raise ValueError(f"target: expected int64 of shape (N, H, W), got {tuple(target.shape)} {target.dtype}")
    flat = target.flatten(1)
    valid = flat != ignore_index
    if target.device.type == "cpu":
        bad = valid & ((flat < 0) | (flat >= num_classes))
        if bool(bad.any()):
            raise ValueError(
                f"target: label {int(flat[bad][0])} is outside [0, {num_classes}) and is not "
                f"ignore_index={ignore_index}"
            )
    # Ignored pixels land in an extra column K, dropped afterwards.
    index = torch.where(valid, flat, num_classes)
    hits = torch.zeros(flat.shape[0], num_classes + 1, device=target.device)
    return hits.scatter_(1, index, 1.0)[:, :num_classes]


def class_presence_loss(class_logits: torch.Tensor, target: torch.Tensor, ignore_index: int = 255) -> torch.Tensor:
    """Binary cross-entropy between image-level class logits and the classes present in the mask.

    ``mean over (n, c) of BCE(class_logits[n, c], present[n, c])`` with ``present = class_presence(target)``,
    the mean taken over the images that have at least one valid pixel (an all-ignored image says nothing
    about its classes). With every pixel ignored the loss is 0 with a zero gradient.

    Args:
        class_logits: ``(N, K)`` float logits (no sigmoid applied), one per class.
        target: ``(N, H, W)`` int64 labels in ``[0, K)`` or ``ignore_index``.
        ignore_index: label of pixels that are no class.

    Returns:
        A scalar tensor of ``class_logits``' dtype (float32 for half-precision logits).

    Raises:
        ValueError: ``class_logits`` not ``(N, K)`` float for the target's N, or a bad target (see
            ``class_presence``).
    """
    if class_logits.dim() != 2 or not class_logits.is_floating_point() or class_logits.shape[0] != target.shape[0]:
        raise ValueError(
            f"class_logits: expected a float tensor of shape ({target.shape[0]}, K) for a target of shape "
            f"{tuple(target.shape)}, got {tuple(class_logits.shape)} {class_logits.dtype}"
        )
    logits = class_logits.float() if class_logits.dtype in (torch.float16, torch.bfloat16) else class_logits
    present = class_presence(target, logits.shape[1], ignore_index).to(logits.dtype)
    counted = (target != ignore_index).flatten(1).any(1).to(logits.dtype)  # (N,) images with a valid pixel
    bce = F.binary_cross_entropy_with_logits(logits, present, reduction="none")
    return (bce * counted[:, None]).sum() / (counted.sum() * logits.shape[1]).clamp_min(1)


class ClassPresenceLoss(nn.Module):
    """Image-level class-presence BCE, the loss of an smp classification (``aux_params``) head.

    The Trainer adds it, times its ``aux_weight``, for smp models built with ``aux_params``. It is not a
    pixel loss, so it is not in the ``LOSSES`` registry (whose losses take ``(N, C, H, W)`` logits).

    Args:
        ignore_index: label of pixels that are no class (255).

    Shape:
        class_logits ``(N, K)`` float, target ``(N, H, W)`` int64 -> scalar.
    """

    def __init__(self, ignore_index: int = 255) -> None:
        super().__init__()
        self.ignore_index = ignore_index

    def forward(self, class_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Return the scalar loss (see ``class_presence_loss``)."""
        return class_presence_loss(class_logits, target, self.ignore_index)
