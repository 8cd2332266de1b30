"""Cross-entropy losses: ``ce`` (optionally class-weighted)."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from segkit.losses import LOSSES
from segkit.losses.functional import cross_entropy

__all__ = ["CrossEntropyLoss"]


@LOSSES.register("ce")
class CrossEntropyLoss(nn.Module):
    """Softmax cross-entropy over valid pixels; ``ce`` in the registry.

    ``loss = sum_V w_y * CE / sum_V w_y`` (plain mean over valid pixels when ``weight`` is None).

    Args:
        weight: optional per-class weights, length C.
        ignore_index: label excluded from the loss (255).
        label_smoothing: in [0, 1).

    Shape:
        logits ``(N, C, H, W)`` float, target ``(N, H, W)`` int64 -> scalar.
    """

    def __init__(
        self, weight: Sequence[float] | None = None, ignore_index: int = 255, label_smoothing: float = 0.0
    ) -> None:
        super().__init__()
        self.register_buffer("weight", None if weight is None else torch.as_tensor(weight, dtype=torch.float32))
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Return the scalar loss (see the class docstring)."""
        return cross_entropy(logits, target, self.weight, self.ignore_index, self.label_smoothing)
