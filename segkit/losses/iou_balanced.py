"""IoU-balanced classification loss (Wu et al. 2019): ``iou_balanced``, called as ``loss(logits, target, iou=map)``."""

from __future__ import annotations

import torch
from torch import nn

from segkit.losses.functional import _check_mode, iou_balanced_loss
from segkit.losses.registry import LOSSES

__all__ = ["IoUBalancedLoss"]


@LOSSES.register("iou_balanced")
class IoUBalancedLoss(nn.Module):
    """IoU-balanced CE: positive pixels weighted by ``iou^eta`` (detached), renormalised so the summed positive
    loss is unchanged; negatives weigh 1; ``iou_balanced`` in the registry. ``eta = 0`` equals ``ce``.

    Called as ``loss(logits, target, iou=map)`` with a per-pixel IoU map ``(N, H, W)`` in [0, 1] (e.g. the IoU of
    the predicted instance or box each pixel belongs to). ``extra_inputs = ("iou",)``, so the Trainer passes
    ``batch["iou"]`` when present. A map that depends on the predictions is supplied by a Trainer subclass::

        class IoUTrainer(Trainer):
            def compute_loss(self, outputs, batch):
                batch = {**batch, "iou": my_iou_map(outputs, batch)}  # (N, H, W), no gradient needed
                return super().compute_loss(outputs, batch)

    A map known in advance (e.g. from boxes) can instead be added to each sample by the dataset under ``"iou"``.

    Args:
        eta: exponent of the IoU (1.5).
        mode: ``"multiclass"`` (positives: label > 0) or ``"binary"`` (positives: target 1).
        ignore_index: label excluded from the loss (255).

    Shape:
        logits ``(N, C, H, W)``, target ``(N, H, W)`` int64, iou ``(N, H, W)`` float -> scalar.
    """

    extra_inputs = ("iou",)

    def __init__(self, eta: float = 1.5, mode: str = "multiclass", ignore_index: int = 255) -> None:
        super().__init__()
        _check_mode(mode)
        self.eta, self.mode, self.ignore_index = eta, mode, ignore_index

    def forward(self, logits: torch.Tensor, target: torch.Tensor, iou: torch.Tensor | None = None) -> torch.Tensor:
        """Return the scalar loss (see the class docstring)."""
        if iou is None:
            raise ValueError(
                "iou_balanced: no iou map; call loss(logits, target, iou=map) or put batch['iou'] in the batch "
                "(see the IoUBalancedLoss docstring)"
            )
        return iou_balanced_loss(logits, target, iou, self.eta, self.mode, self.ignore_index)
