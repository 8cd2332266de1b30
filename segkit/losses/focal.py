"""Focal loss (Lin et al. 2017): ``focal``, multi-class softmax or binary sigmoid."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from segkit.losses.functional import _check_mode, focal_loss
from segkit.losses.registry import LOSSES

__all__ = ["FocalLoss"]


@LOSSES.register("focal")
class FocalLoss(nn.Module):
    """Focal loss ``-alpha_t (1 - p_t)^gamma log p_t``, mean over valid **pixels** (not pixels x classes).

    Multi-class (softmax): ``alpha`` None = no weighting; a scalar = ``1 - alpha`` for class 0 and ``alpha`` for the
    others; a sequence = one weight per class. Binary (``mode="binary"``, torchvision's ``sigmoid_focal_loss``):
    ``alpha`` weighs positives, ``1 - alpha`` negatives; None = no weighting.

    Args:
        gamma: focusing parameter (2.0).
        alpha: see above (None).
        mode: ``"multiclass"`` or ``"binary"``.
        ignore_index: label excluded from the loss (255).

    Shape:
        logits ``(N, C, H, W)``, target ``(N, H, W)`` int64; binary ``(N, 1, H, W)`` -> scalar.
    """

    def __init__(
        self,
        gamma: float = 2.0,
        alpha: float | Sequence[float] | None = None,
        mode: str = "multiclass",
        ignore_index: int = 255,
    ) -> None:
        super().__init__()
        _check_mode(mode)
        if mode == "binary" and alpha is not None and not isinstance(alpha, (int, float)):
            raise ValueError(f"alpha: binary mode expects a scalar or None, got {alpha!r}")
        self.gamma, self.alpha, self.mode, self.ignore_index = gamma, alpha, mode, ignore_index

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Return the scalar loss (see the class docstring)."""
        return focal_loss(logits, target, self.gamma, self.alpha, self.mode, self.ignore_index)
