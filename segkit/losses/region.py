"""Region losses: ``dice``, ``jaccard``, ``tversky`` (focal-Tversky with ``gamma``), ``sensitivity_specificity``."""

from __future__ import annotations

import torch
from torch import nn

from segkit.losses.functional import _check_mode
from segkit.losses.functional_region import (
    ABSENT,
    dice_loss,
    jaccard_loss,
    sensitivity_specificity_loss,
    tversky_loss,
)
from segkit.losses.registry import LOSSES

__all__ = ["DiceLoss", "JaccardLoss", "SensitivitySpecificityLoss", "TverskyLoss"]


class _RegionLoss(nn.Module):
    def __init__(self, smooth: float, eps: float, per_image: bool, absent: str, mode: str, ignore_index: int) -> None:
        super().__init__()
        _check_mode(mode)
        if absent not in ABSENT:
            raise ValueError(f"absent: expected one of {ABSENT}, got {absent!r}")
        self.smooth, self.eps, self.per_image, self.absent = smooth, eps, per_image, absent
        self.mode, self.ignore_index = mode, ignore_index


@LOSSES.register("dice")
class DiceLoss(_RegionLoss):
    """Soft Dice loss (Milletari et al. 2016); ``dice`` in the registry.

    Mean over classes of ``1 - (2 TP + smooth) / (sum p + sum t + smooth + eps)`` on softmax (binary: sigmoid)
    probabilities, ignored pixels removed from ``p`` and ``t``.

    Args:
        smooth: additive smoothing of numerator and denominator (0.0).
        eps: added to the denominator (1e-7).
        per_image: sums per image then mean (True) or over the whole batch (False, default).
        absent: class missing from the target of a set: ``"zero"`` (loss 0, counted in the mean; smp),
            ``"keep"`` (computed; MONAI) or ``"exclude"`` (left out of the mean).
        mode: ``"multiclass"`` or ``"binary"`` (the sigmoid channel alone).
        ignore_index: label excluded from the loss (255).

    Shape:
        logits ``(N, C, H, W)``, target ``(N, H, W)`` int64; binary ``(N, 1, H, W)`` -> scalar.
    """

    def __init__(
        self,
        smooth: float = 0.0,
        eps: float = 1e-7,
        per_image: bool = False,
        absent: str = "zero",
        mode: str = "multiclass",
        ignore_index: int = 255,
    ) -> None:
        super().__init__(smooth, eps, per_image, absent, mode, ignore_index)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Return the scalar loss (see the class docstring)."""
        return dice_loss(
            logits, target, self.smooth, self.eps, self.per_image, self.absent, self.mode, self.ignore_index
        )


@LOSSES.register("jaccard")
class JaccardLoss(_RegionLoss):
    """Soft Jaccard (IoU) loss; ``jaccard`` in the registry.

    Mean over classes of ``1 - (TP + smooth) / (TP + FP + FN + smooth + eps)``; arguments as ``DiceLoss``.

    Shape:
        logits ``(N, C, H, W)``, target ``(N, H, W)`` int64; binary ``(N, 1, H, W)`` -> scalar.
    """

    def __init__(
        self,
        smooth: float = 0.0,
        eps: float = 1e-7,
        per_image: bool = False,
        absent: str = "zero",
        mode: str = "multiclass",
        ignore_index: int = 255,
    ) -> None:
        super().__init__(smooth, eps, per_image, absent, mode, ignore_index)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Return the scalar loss (see the class docstring)."""
        return jaccard_loss(
            logits, target, self.smooth, self.eps, self.per_image, self.absent, self.mode, self.ignore_index
        )


@LOSSES.register("tversky")
class TverskyLoss(_RegionLoss):
    """(Focal-)Tversky loss (Salehi et al. 2017; Abraham & Khan 2019); ``tversky`` in the registry.

    Mean over classes of ``(1 - T_c)^gamma``, ``T_c = (TP + smooth) / (TP + alpha FP + beta FN + smooth + eps)``.
    Note smp's ``TverskyLoss`` raises the *class mean* to ``gamma``; here each class term is (Abraham & Khan).

    Args:
        alpha: weight of false positives (0.5).
        beta: weight of false negatives (0.5).
        gamma: focal exponent (1.0 = plain Tversky); ``1 - T_c`` is clamped at ``eps`` when ``gamma < 1``.
        smooth, eps, per_image, absent, mode, ignore_index: as ``DiceLoss``.

    Shape:
        logits ``(N, C, H, W)``, target ``(N, H, W)`` int64; binary ``(N, 1, H, W)`` -> scalar.
    """

    def __init__(
        self,
        alpha: float = 0.5,
        beta: float = 0.5,
        gamma: float = 1.0,
        smooth: float = 0.0,
        eps: float = 1e-7,
        per_image: bool = False,
        absent: str = "zero",
        mode: str = "multiclass",
        ignore_index: int = 255,
    ) -> None:
        super().__init__(smooth, eps, per_image, absent, mode, ignore_index)
        self.alpha, self.beta, self.gamma = alpha, beta, gamma

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Return the scalar loss (see the class docstring)."""
        return tversky_loss(
            logits, target, self.alpha, self.beta, self.gamma, self.smooth, self.eps, self.per_image,
            self.absent, self.mode, self.ignore_index,
        )  # fmt: skip


@LOSSES.register("sensitivity_specificity")
class SensitivitySpecificityLoss(nn.Module):
    """Sensitivity-specificity loss (Brosch et al. 2015); ``sensitivity_specificity`` in the registry.

    Per class ``r sum((t-p)^2 t)/(sum t + smooth) + (1-r) sum((t-p)^2 (1-t))/(sum(1-t) + smooth)`` over batch and
    space (ignored pixels removed), mean over classes.

    Args:
        r: weight of the sensitivity term (0.05).
        smooth: added to both denominators (1e-5).
        mode: ``"multiclass"`` or ``"binary"`` (the sigmoid channel alone).
        ignore_index: label excluded from the loss (255).

    Shape:
        logits ``(N, C, H, W)``, target ``(N, H, W)`` int64; binary ``(N, 1, H, W)`` -> scalar.
    """

    def __init__(
        self, r: float = 0.05, smooth: float = 1e-5, mode: str = "multiclass", ignore_index: int = 255
    ) -> None:
        super().__init__()
        _check_mode(mode)
        self.r, self.smooth, self.mode, self.ignore_index = r, smooth, mode, ignore_index

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Return the scalar loss (see the class docstring)."""
        return sensitivity_specificity_loss(logits, target, self.r, self.smooth, self.mode, self.ignore_index)
