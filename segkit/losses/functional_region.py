"""Region (overlap) losses as pure functions: Dice, Jaccard, (focal-)Tversky, sensitivity-specificity."""

from __future__ import annotations

import torch

from segkit.losses.functional import check_multiclass_inputs, probs_and_onehot
from segkit.losses.functional_softmax import softmax_stats

__all__ = ["ABSENT", "dice_loss", "jaccard_loss", "sensitivity_specificity_loss", "tversky_loss"]

ABSENT = ("zero", "keep", "exclude")


def _region_sums(
    logits: torch.Tensor, target: torch.Tensor, mode: str, ignore_index: int, per_image: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return ``TP, sum p, sum t`` of shape ``(S, K)`` (S = N sets per image, or 1) and ``(S,)`` valid counts."""
    if mode == "multiclass":
        return _multiclass_region_sums(logits, target, ignore_index, per_image)
    p, t, valid = probs_and_onehot(logits, target, mode, ignore_index)
    dims = (2, 3) if per_image else (0, 2, 3)
    tp, sp, st = (p * t).sum(dims), p.sum(dims), t.sum(dims)
    count = valid.sum(dims).reshape(-1)
    if not per_image:
        tp, sp, st = tp[None], sp[None], st[None]
    return tp, sp, st, count


def _multiclass_region_sums(
    logits: torch.Tensor, target: torch.Tensor, ignore_index: int, per_image: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The same sums without a one-hot tensor: ``TP_c`` is the sum of ``p_y`` over pixels of label c
    (``index_add`` on ``N*H*W`` values) and ``sum t`` a count; ``sum p`` and the gradient through the softmax
    come from ``softmax_stats`` (one full-size tensor in the backward)."""
    check_multiclass_inputs(logits, target, ignore_index)
    n, c = logits.shape[:2]
    valid = target != ignore_index
    labels = target.masked_fill(~valid, 0)
    p_y, sp = softmax_stats(logits, labels, valid, per_image=per_image)
    sets = n if per_image else 1
    bins = labels if not per_image else labels + c * torch.arange(n, device=labels.device).view(n, 1, 1)
    w = valid.to(logits.dtype).flatten()
    tp = logits.new_zeros(sets * c).index_add(0, bins.flatten(), p_y.flatten()).reshape(sets, c)
    st = logits.new_zeros(sets * c).index_add(0, bins.flatten(), w).reshape(sets, c)
    count = valid.reshape(sets, -1).sum(1)
    return tp, sp, st, count


def _reduce(loss: torch.Tensor, st: torch.Tensor, count: torch.Tensor, absent: str) -> torch.Tensor:
    """Mean over classes with the ``absent`` policy, sets without valid pixels giving 0, then mean over sets."""
    if absent not in ABSENT:
        raise ValueError(f"absent: expected one of {ABSENT}, got {absent!r}")
    present = (st > 0).to(loss.dtype)
    if absent == "zero":
        per_set = (loss * present).mean(1)
    elif absent == "exclude":
        per_set = (loss * present).sum(1) / present.sum(1).clamp_min(1)
    else:
        per_set = loss.mean(1)
    per_set = torch.where(count > 0, per_set, torch.zeros_like(per_set))
    return per_set.mean()


def tversky_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    alpha: float = 0.5,
    beta: float = 0.5,
    gamma: float = 1.0,
    smooth: float = 0.0,
    eps: float = 1e-7,
    per_image: bool = False,
    absent: str = "zero",
    mode: str = "multiclass",
    ignore_index: int = 255,
) -> torch.Tensor:
    """(Focal-)Tversky loss (Salehi et al. 2017; Abraham & Khan 2019): mean over classes of ``(1 - T_c)^gamma``.

    ``T_c = (TP + smooth) / (TP + alpha FP + beta FN + smooth + eps)``; ``alpha`` weighs false positives,
    ``beta`` false negatives; ``alpha = beta = 0.5`` is Dice, ``1, 1`` is Jaccard. Sums run over batch and space
    (``per_image=False``) or per image, then averaged. Ignored pixels are removed from ``p`` and ``t``.
    ``absent``: a class with no target pixel in the set gets loss 0 but counts in the mean (``"zero"``), is
    computed like the others (``"keep"``) or is left out of the mean (``"exclude"``). A set without valid
    pixels contributes 0. ``1 - T_c`` is clamped at ``eps`` when ``gamma < 1``.

    Returns:
        Scalar tensor.
    """
    tp, sp, st, count = _region_sums(logits, target, mode, ignore_index, per_image)
    fp, fn = sp - tp, st - tp
    score = (tp + smooth) / (tp + alpha * fp + beta * fn + smooth + eps)
    loss = 1 - score
    if gamma != 1:
        loss = (loss.clamp_min(eps) if gamma < 1 else loss) ** gamma
    return _reduce(loss, st, count, absent)


def dice_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    smooth: float = 0.0,
    eps: float = 1e-7,
    per_image: bool = False,
    absent: str = "zero",
    mode: str = "multiclass",
    ignore_index: int = 255,
) -> torch.Tensor:
    """Soft Dice loss (Milletari et al. 2016): mean over classes of ``1 - D_c``.

    ``D_c = (2 TP + smooth) / (sum p + sum t + smooth + eps)``; ``per_image``, ``absent`` and ignored pixels as in
    ``tversky_loss``. Note smp's ``DiceLoss(smooth=s)`` clamps the denominator at ``eps`` instead of adding it.

    Returns:
        Scalar tensor.
    """
    tp, sp, st, count = _region_sums(logits, target, mode, ignore_index, per_image)
    loss = 1 - (2 * tp + smooth) / (sp + st + smooth + eps)
    return _reduce(loss, st, count, absent)


def jaccard_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    smooth: float = 0.0,
    eps: float = 1e-7,
    per_image: bool = False,
    absent: str = "zero",
    mode: str = "multiclass",
    ignore_index: int = 255,
) -> torch.Tensor:
    """Soft Jaccard (IoU) loss: mean over classes of ``1 - (TP + smooth) / (TP + FP + FN + smooth + eps)``.

    Options as in ``tversky_loss``.

    Returns:
        Scalar tensor.
    """
    tp, sp, st, count = _region_sums(logits, target, mode, ignore_index, per_image)
    loss = 1 - (tp + smooth) / (sp + st - tp + smooth + eps)
    return _reduce(loss, st, count, absent)


def sensitivity_specificity_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    r: float = 0.05,
    smooth: float = 1e-5,
    mode: str = "multiclass",
    ignore_index: int = 255,
) -> torch.Tensor:
    """Sensitivity-specificity loss (Brosch et al. 2015), mean over classes.

    Per class ``r sum((t-p)^2 t) / (sum t + smooth) + (1 - r) sum((t-p)^2 (1-t)) / (sum(1-t) + smooth)``, sums over
    batch and space after removing ignored pixels (binary: the sigmoid channel alone).

    Returns:
        Scalar tensor; 0 with zero gradient when every pixel is ignored.
    """
    if mode == "multiclass":
        return _sensitivity_specificity_multiclass(logits, target, r, smooth, ignore_index)
    p, t, valid = probs_and_onehot(logits, target, mode, ignore_index)
    sq = (t - p) ** 2
    neg = (1 - t) * valid
    dims = (0, 2, 3)
    sens = (sq * t).sum(dims) / (t.sum(dims) + smooth)
    spec = (sq * neg).sum(dims) / (neg.sum(dims) + smooth)
    return (r * sens + (1 - r) * spec).mean()


def _sensitivity_specificity_multiclass(
    logits: torch.Tensor, target: torch.Tensor, r: float, smooth: float, ignore_index: int
) -> torch.Tensor:
    """The same sums without a one-hot tensor: with one-hot t, ``sum (t-p)^2 t = sum_{y=c} (1-p_y)^2`` and
    ``sum (t-p)^2 (1-t) = sum p_c^2 - sum_{y=c} p_y^2``, the per-class sums over pixels of label c done by
    ``index_add`` on ``N*H*W`` values instead of ``C`` full-size products."""
    check_multiclass_inputs(logits, target, ignore_index)
    c = logits.shape[1]
    valid = target != ignore_index
    w = valid.to(logits.dtype)
    y = target.masked_fill(~valid, 0)
    p_y, sq = softmax_stats(logits, y, valid, power=2)
    labels = y.flatten()
    zeros = logits.new_zeros(c)
    sens_num = zeros.index_add(0, labels, ((1 - p_y) ** 2 * w).flatten())
    pos = zeros.index_add(0, labels, w.flatten())
    spec_num = sq[0] - zeros.index_add(0, labels, (p_y**2).flatten())
    neg = w.sum() - pos
    return (r * sens_num / (pos + smooth) + (1 - r) * spec_num / (neg + smooth)).mean()
