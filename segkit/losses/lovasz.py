"""Lovász losses (Berman et al. 2018): ``lovasz_softmax`` (alias ``lovasz``) and ``lovasz_hinge`` (binary)."""

from __future__ import annotations

import torch
from torch import nn

from segkit.losses.functional_lovasz import lovasz_hinge_loss, lovasz_softmax_loss
from segkit.losses.registry import LOSSES

__all__ = ["LovaszHingeLoss", "LovaszSoftmaxLoss"]


@LOSSES.register("lovasz_softmax", "lovasz")
class LovaszSoftmaxLoss(nn.Module):
    """Lovász-Softmax loss, a convex surrogate of the mean IoU; ``lovasz_softmax`` / ``lovasz`` in the registry.

    Args:
        classes: ``"present"`` (mean over classes present in the valid target of the set) or ``"all"``.
        per_image: one set per image, then mean (True) or the whole batch as one set (False, default).
        ignore_index: label excluded from the loss (255).

    Shape:
        logits ``(N, C, H, W)`` float, target ``(N, H, W)`` int64 -> scalar.
    """

    def __init__(self, classes: str = "present", per_image: bool = False, ignore_index: int = 255) -> None:
        super().__init__()
        if classes not in ("present", "all"):
            raise ValueError(f"classes: expected 'present' or 'all', got {classes!r}")
        self.classes, self.per_image, self.ignore_index = classes, per_image, ignore_index

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Return the scalar loss (see the class docstring)."""
        return lovasz_softmax_loss(logits, target, self.classes, self.per_image, self.ignore_index)


@LOSSES.register("lovasz_hinge")
class LovaszHingeLoss(nn.Module):
    """Binary Lovász hinge loss on logits; ``lovasz_hinge`` in the registry.

    Args:
        per_image: one set per image, then mean (True, default, as the paper) or the batch as one set.
        ignore_index: value excluded from the loss (255).

    Shape:
        logits ``(N, 1, H, W)`` float, target ``(N, 1, H, W)`` or ``(N, H, W)`` in {0, 1} -> scalar.
    """

    mode = "binary"

    def __init__(self, per_image: bool = True, ignore_index: int = 255) -> None:
        super().__init__()
        self.per_image, self.ignore_index = per_image, ignore_index

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Return the scalar loss (see the class docstring)."""
        return lovasz_hinge_loss(logits, target, self.per_image, self.ignore_index)
