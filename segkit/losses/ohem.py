"""Online hard example mining cross-entropy (OHEM, as trained by HRNet, DDRNet and PIDNet); ``ohem_ce``."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from segkit.losses.functional import per_pixel_ce
from segkit.losses.registry import LOSSES

__all__ = ["OhemCrossEntropyLoss", "ohem_ce"]


def ohem_ce(
    logits: torch.Tensor,
    target: torch.Tensor,
    thresh: float = 0.7,
    min_kept: int = 100_000,
    ignore_index: int = 255,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Cross-entropy averaged over the hard valid pixels of the whole batch.

    A valid pixel is hard when its probability of the true class ``p_y`` is below ``thresh``, or when it is
    among the ``min_kept`` valid pixels of lowest ``p_y`` (ties at that rank kept too): the mean runs over
    ``max(min_kept, #{p_y < thresh})`` pixels (all valid ones when fewer). The selection carries no gradient.

    This is the rule of the reference implementations (HRNet's ``OhemCrossEntropy``, mmseg's
    ``OHEMPixelSampler``: keep ``p_y < max(thresh, p_(min_kept))``) except at two edges where theirs drops
    pixels: the pixel at rank ``min_kept`` and its ties are kept, and with ``min_kept`` or fewer valid pixels
    every one is kept (theirs drops the easiest, or all of them when every ``p_y`` is equal, giving NaN).
    No host sync: the rank comes from ``kthvalue`` with ignored pixels placed last.

    Args:
        logits: ``(N, C, H, W)`` float.
        target: ``(N, H, W)`` int64 in ``[0, C)`` or ``ignore_index``.
        thresh: probability below which every valid pixel is kept (0.7; the Cityscapes recipes of
            DDRNet and PIDNet use 0.9).
        min_kept: number of hardest valid pixels always kept (100000; those recipes use 131072).
        ignore_index: label excluded from the loss.
        weight: optional ``(C,)`` class weights (HRNet's ``OhemCrossEntropy(weight=...)``): the selection is
            unchanged (by ``p_y``) and the mean becomes ``weighted_ce``'s over the kept pixels,
            ``sum_kept w_y CE / sum_kept w_y``; with ``thresh=1`` every pixel below certainty is kept.

    Returns:
        Scalar tensor; 0 with zero gradient when every pixel is ignored.

    Example:
        >>> ohem_ce(torch.randn(2, 19, 64, 64), torch.randint(0, 19, (2, 64, 64)), thresh=0.7, min_kept=256)
    """
    if not 0.0 < thresh <= 1.0:
        raise ValueError(f"ohem_ce: thresh must be a probability in (0, 1], got {thresh}")
    if int(min_kept) < 1:
        raise ValueError(f"ohem_ce: min_kept must be at least 1, got {min_kept}")
    ce, valid = per_pixel_ce(logits, target, "multiclass", ignore_index)
    with torch.no_grad():
        p_true = torch.exp(-ce).masked_fill(~valid, float("inf")).flatten()
        k = min(int(min_kept), p_true.numel())
        kth = p_true.kthvalue(k).values if k > 0 else p_true.new_tensor(float("inf"))
        keep = valid & ((p_true < thresh) | (p_true <= kth)).view_as(valid)
    w = keep.to(ce.dtype) if weight is None else weight.to(ce.dtype)[torch.where(valid, target, 0)] * keep
    return (w * ce).sum() / w.sum().clamp_min(torch.finfo(ce.dtype).tiny)  # 0 when nothing is kept


@LOSSES.register("ohem_ce")
class OhemCrossEntropyLoss(nn.Module):
    """OHEM cross-entropy; ``ohem_ce`` in the registry. See ``ohem_ce`` for the definition.

    Args:
        thresh: probability below which every valid pixel is kept (0.7).
        min_kept: number of hardest valid pixels always kept, counted over the batch (100000).
        ignore_index: label excluded from the loss (255).
        weight: optional per-class weights, length C (see ``ohem_ce``).

    Shape:
        logits ``(N, C, H, W)``, target ``(N, H, W)`` int64 -> scalar.
    """

    weight: torch.Tensor | None

    def __init__(
        self,
        thresh: float = 0.7,
        min_kept: int = 100_000,
        ignore_index: int = 255,
        weight: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        self.register_buffer("weight", None if weight is None else torch.as_tensor(weight, dtype=torch.float32))
        if not 0.0 < thresh <= 1.0:
            raise ValueError(f"ohem_ce: thresh must be a probability in (0, 1], got {thresh}")
        if int(min_kept) < 1:
            raise ValueError(f"ohem_ce: min_kept must be at least 1, got {min_kept}")
        self.thresh, self.min_kept, self.ignore_index = thresh, int(min_kept), ignore_index

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Return the scalar loss (see ``ohem_ce``)."""
        return ohem_ce(logits, target, self.thresh, self.min_kept, self.ignore_index, self.weight)
