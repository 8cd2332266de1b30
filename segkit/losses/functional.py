"""Loss functions as pure functions on logits and integer targets (the contract of every segkit loss)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = [
    "binary_cross_entropy",
    "check_binary_inputs",
    "check_multiclass_inputs",
    "cross_entropy",
    "focal_loss",
    "iou_balanced_loss",
    "onehot",
    "per_pixel_ce",
    "probs_and_onehot",
    "topk_cross_entropy",
]

MODES = ("multiclass", "binary")


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"mode: expected one of {MODES}, got {mode!r}")


def check_multiclass_inputs(logits: torch.Tensor, target: torch.Tensor, ignore_index: int) -> None:
    """Raise ``ValueError`` unless logits are ``(N, C, H, W)`` float and target ``(N, H, W)`` int64 in range.

    Shapes and dtypes are always checked (no device sync). Label values must lie in ``[0, C)`` or equal
    ``ignore_index``; that check needs a host sync, so it runs only when ``target`` is on the CPU, where it
    costs nothing extra. On CUDA it is skipped so a training step never waits on the device; a bad label
    then surfaces as a device-side assert (validate the data on the CPU, e.g. in a unit test of the dataset).

    Raises:
        ValueError: naming the expected and received shape/dtype, or the offending label value.
    """
    _check_multiclass(logits, target, ignore_index)


def _check_multiclass(logits: torch.Tensor, target: torch.Tensor, ignore_index: int) -> bool:
    """``check_multiclass_inputs``; returns True when the target is known to hold a pixel that is not ignored
    (known on the CPU, from the labels' minimum and maximum), False when it holds none or is not on the CPU."""
    if logits.dim() != 4 or not logits.is_floating_point():
        raise ValueError(
            f"logits: expected a float tensor of shape (N, C, H, W), got {tuple(logits.shape)} {logits.dtype}"
        )
    n, c, h, w = logits.shape
    if target.shape != (n, h, w) or target.dtype != torch.int64:
        raise ValueError(
            f"target: expected int64 of shape {(n, h, w)} to match logits {tuple(logits.shape)}, "
            f"got {tuple(target.shape)} {target.dtype}"
        )
    if target.device.type != "cpu" or target.numel() == 0:
        return False
    # One pass over the labels (a few times cheaper than the masked check): when every label is a class, the
    # target is fine; else the exact check. Either way, every pixel is ignored only when low == high == ignore.
    low, high = (int(v) for v in torch.aminmax(target))
    if not (0 <= low and high < c):
        bad = (target != ignore_index) & ((target < 0) | (target >= c))
        if bool(bad.any()):
            value = int(target[bad][0])
            raise ValueError(f"target: label {value} is outside [0, {c}) and is not ignore_index={ignore_index}")
    return not low == high == ignore_index


def check_binary_inputs(logits: torch.Tensor, target: torch.Tensor, ignore_index: int) -> torch.Tensor:
    """Check a binary problem and return the target as ``(N, H, W)`` int64.

    Logits must be ``(N, 1, H, W)`` float; the target ``(N, 1, H, W)`` or ``(N, H, W)`` of an integer, bool or
    float dtype with values in {0, 1, ``ignore_index``}. Values are checked on the CPU only (see
    ``check_multiclass_inputs``).

    Raises:
        ValueError: naming the expected and received shape/dtype, or the offending value.
    """
    if logits.dim() != 4 or logits.shape[1] != 1 or not logits.is_floating_point():
        raise ValueError(
            f"logits: binary mode expects a float tensor of shape (N, 1, H, W), got {tuple(logits.shape)} {logits.dtype}"
        )
    n, _, h, w = logits.shape
    if target.dim() == 4 and target.shape[1] == 1:
        target = target[:, 0]
    if target.shape != (n, h, w) or target.dtype.is_complex:
        raise ValueError(
            f"target: binary mode expects shape {(n, 1, h, w)} or {(n, h, w)} to match logits {tuple(logits.shape)}, "
            f"got {tuple(target.shape)} {target.dtype}"
        )
    if target.device.type == "cpu":
        bad = (target != 0) & (target != 1) & (target != ignore_index)
        if bool(bad.any()):
            raise ValueError(
                f"target: binary mode expects values in {{0, 1}} or ignore_index={ignore_index}, got {target[bad][0].item()}"
            )
    return target.long()


def probs_and_onehot(
    logits: torch.Tensor, target: torch.Tensor, mode: str = "multiclass", ignore_index: int = 255
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return probabilities, the one-hot target and the valid-pixel mask, ignored pixels zeroed in both.

    Multi-class: softmax over C channels and a C-channel one-hot. Binary: the sigmoid channel alone and the
    target as one channel (the region losses then treat it as a single class).

    Returns:
        ``(p, t, valid)``: ``p`` and ``t`` ``(N, K, H, W)`` in ``logits.dtype`` (K = C, or 1 in binary mode),
        ``valid`` ``(N, 1, H, W)`` of the same dtype.
    """
    _check_mode(mode)
    if mode == "binary":
        target = check_binary_inputs(logits, target, ignore_index)
        valid = (target != ignore_index).unsqueeze(1).to(logits.dtype)
        return torch.sigmoid(logits) * valid, (target == 1).unsqueeze(1).to(logits.dtype), valid
    check_multiclass_inputs(logits, target, ignore_index)
    valid = (target != ignore_index).unsqueeze(1).to(logits.dtype)
    return torch.softmax(logits, 1) * valid, onehot(target, logits.shape[1], logits.dtype, ignore_index), valid


def onehot(target: torch.Tensor, num_classes: int, dtype: torch.dtype, ignore_index: int = 255) -> torch.Tensor:
    """One-hot ``(N, C, H, W)`` of ``(N, H, W)`` labels in ``dtype``; ignored pixels get an all-zero column.

    A broadcast comparison, cheaper than ``F.one_hot`` (which builds an int64 tensor).
    """
    classes = torch.arange(num_classes, device=target.device).view(1, -1, 1, 1)
    hot = target.unsqueeze(1) == classes
    if 0 <= ignore_index < num_classes:
        hot &= (target != ignore_index).unsqueeze(1)
    return hot.to(dtype)


def per_pixel_ce(
    logits: torch.Tensor, target: torch.Tensor, mode: str = "multiclass", ignore_index: int = 255
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel (binary) cross-entropy in log space and the valid mask, both ``(N, H, W)``; 0 on ignored pixels."""
    _check_mode(mode)
    if mode == "binary":
        target = check_binary_inputs(logits, target, ignore_index)
        valid = target != ignore_index
        sign = (2 * (target == 1).to(logits.dtype) - 1).unsqueeze(1)
        return (-F.logsigmoid(sign * logits))[:, 0].masked_fill(~valid, 0), valid
    check_multiclass_inputs(logits, target, ignore_index)
    return F.cross_entropy(logits, target, ignore_index=ignore_index, reduction="none"), target != ignore_index


def cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None = None,
    ignore_index: int = 255,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """Softmax cross-entropy averaged over valid pixels (torch's weighted mean when ``weight`` is given).

    Args:
        logits: ``(N, C, H, W)`` float.
        target: ``(N, H, W)`` int64 in ``[0, C)`` or ``ignore_index``.
        weight: optional ``(C,)`` class weights; the mean divides by the summed weights of valid pixels.
        ignore_index: label excluded from the loss.
        label_smoothing: as in ``torch.nn.functional.cross_entropy``.

    Returns:
        Scalar tensor; 0 with a zero gradient when every pixel is ignored (torch would return NaN).
    """
    some_valid = _check_multiclass(logits, target, ignore_index)
    if weight is not None:
        weight = weight.to(device=logits.device, dtype=logits.dtype)
    if some_valid and weight is None:
        # A valid pixel exists, so torch's mean divides by a count > 0 (never 0/0): its value, without our count.
        return F.cross_entropy(logits, target, ignore_index=ignore_index, label_smoothing=label_smoothing)
    # torch's "sum" (not "none" then .sum(): one pass fewer in the forward and the backward), over our denominator.
    total = F.cross_entropy(
        logits, target, weight=weight, ignore_index=ignore_index, reduction="sum", label_smoothing=label_smoothing
    )
    valid = target != ignore_index
    if weight is None:
        denom = valid.sum()
    else:
        denom = weight[target.clamp(0, logits.shape[1] - 1)].masked_fill(~valid, 0).sum()
    return total / denom.clamp_min(1e-12).to(total.dtype)


def binary_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, pos_weight: float | None = None, ignore_index: int = 255
) -> torch.Tensor:
    """Sigmoid cross-entropy ``-(w_pos t log s(x) + (1 - t) log s(-x))``, mean over valid pixels.

    Args:
        logits: ``(N, 1, H, W)`` float.
        target: ``(N, 1, H, W)`` or ``(N, H, W)`` in {0, 1} or ``ignore_index``.
        pos_weight: weight of the positive term (torch's ``pos_weight``); None = 1.
        ignore_index: value excluded from the loss.

    Returns:
        Scalar tensor; 0 with zero gradient when every pixel is ignored.
    """
    target = check_binary_inputs(logits, target, ignore_index)
    valid = target != ignore_index
    t = (target == 1).to(logits.dtype)
    x = logits[:, 0]
    pw = 1.0 if pos_weight is None else float(pos_weight)
    per_pixel = -(pw * t * F.logsigmoid(x) + (1 - t) * F.logsigmoid(-x))
    return per_pixel.masked_fill(~valid, 0).sum() / valid.sum().clamp_min(1).to(logits.dtype)


def topk_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, k: float = 10.0, mode: str = "multiclass", ignore_index: int = 255
) -> torch.Tensor:
    """Mean of the ``k`` % largest per-pixel CE values over the valid pixels of the whole batch.

    ``n = max(1, floor(|V| k / 100))`` values are averaged; ``k = 100`` equals ``ce``. No host sync:
    ``topk`` takes the bound for an all-valid batch and a device-side mask keeps the first ``n``.

    Returns:
        Scalar tensor; 0 with zero gradient when every pixel is ignored.
    """
    if not 0 < k <= 100:
        raise ValueError(f"k: expected a percentage in (0, 100], got {k}")
    ce, valid = per_pixel_ce(logits, target, mode, ignore_index)
    flat = ce.flatten().masked_fill(~valid.flatten(), -1.0)  # ignored pixels sort after every valid one (CE >= 0)
    count = valid.sum()
    n = torch.clamp(torch.floor(count.to(torch.float64) * k / 100), min=1)
    bound = max(1, int(flat.numel() * k // 100))
    values = flat.topk(bound).values
    keep = torch.arange(bound, device=flat.device) < n
    loss = torch.where(keep, values, torch.zeros_like(values)).sum() / n.to(values.dtype)
    return torch.where(count > 0, loss, torch.zeros_like(loss))


def _class_alpha(
    alpha: float | Sequence[float] | torch.Tensor | None, num_classes: int, ref: torch.Tensor
) -> torch.Tensor | None:
    if alpha is None:
        return None
    if isinstance(alpha, (int, float)):
        a = torch.full((num_classes,), float(alpha), dtype=ref.dtype, device=ref.device)
        a[0] = 1 - float(alpha)
        return a
    a = torch.as_tensor(alpha, dtype=ref.dtype, device=ref.device)
    if a.shape != (num_classes,):
        raise ValueError(f"alpha: expected a scalar or {num_classes} per-class weights, got shape {tuple(a.shape)}")
    return a


def focal_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    gamma: float = 2.0,
    alpha: float | Sequence[float] | torch.Tensor | None = None,
    mode: str = "multiclass",
    ignore_index: int = 255,
    eps: float = 1e-6,
) -> torch.Tensor:
    """Focal loss (Lin et al. 2017), mean over valid pixels.

    Multi-class: ``-alpha_t (1 - p_t)^gamma log p_t`` with softmax ``p``; ``alpha`` None = 1, a scalar =
    ``1 - alpha`` for class 0 and ``alpha`` for the others, a sequence = one weight per class. Binary
    (torchvision's ``sigmoid_focal_loss``): ``ce * (1 - p_t)^gamma`` weighted ``alpha t + (1 - alpha)(1 - t)``
    (pass ``alpha=0.25`` for torchvision's default; None = no weighting). ``1 - p_t`` is computed in log space,
    and clamped at ``eps`` only when ``gamma < 1`` (infinite derivative at 0 otherwise).

    Returns:
        Scalar tensor; 0 with zero gradient when every pixel is ignored.
    """
    _check_mode(mode)
    if mode == "binary":
        tgt = check_binary_inputs(logits, target, ignore_index)
        valid = tgt != ignore_index
        t = (tgt == 1).to(logits.dtype)
        z = (2 * t - 1) * logits[:, 0]
        log_pt = F.logsigmoid(z)
        one_minus = torch.sigmoid(-z)
        weight = None if alpha is None else float(alpha) * t + (1 - float(alpha)) * (1 - t)  # type: ignore[arg-type]
    else:
        check_multiclass_inputs(logits, target, ignore_index)
        valid = target != ignore_index
        safe = target.masked_fill(~valid, 0)
        log_pt = F.log_softmax(logits, 1).gather(1, safe.unsqueeze(1))[:, 0]
        one_minus = -torch.expm1(log_pt)
        a = _class_alpha(alpha, logits.shape[1], logits)
        weight = None if a is None else a[safe]
    if gamma < 1:
        one_minus = one_minus.clamp_min(eps)
    per_pixel = -(one_minus**gamma) * log_pt
    if weight is not None:
        per_pixel = per_pixel * weight
    return per_pixel.masked_fill(~valid, 0).sum() / valid.sum().clamp_min(1).to(logits.dtype)


def iou_balanced_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    iou: torch.Tensor,
    eta: float = 1.5,
    mode: str = "multiclass",
    ignore_index: int = 255,
) -> torch.Tensor:
    """IoU-balanced classification loss (Wu et al. 2019): CE with positives reweighted by ``iou^eta``.

    Positives are pixels with label > 0 (binary: target 1). ``w_i = iou_i^eta * S / sum_pos iou_j^eta CE_j``
    with ``S = sum_pos CE_j`` (weights and normaliser detached, normaliser 0 when its denominator is 0);
    negatives weigh 1; ``loss = sum_V w_i CE_i / |V|``. Its value equals plain CE, only the gradient moves;
    ``eta = 0`` equals ``ce``.

    Args:
        iou: ``(N, H, W)`` (or ``(N, 1, H, W)``) per-pixel IoU in [0, 1], e.g. of the instance or box each
            pixel belongs to; no gradient flows into it.

    Returns:
        Scalar tensor; 0 with zero gradient when every pixel is ignored.
    """
    ce, valid = per_pixel_ce(logits, target, mode, ignore_index)
    if iou.dim() == 4 and iou.shape[1] == 1:
        iou = iou[:, 0]
    if iou.shape != ce.shape or not iou.is_floating_point():
        raise ValueError(f"iou: expected a float map of shape {tuple(ce.shape)}, got {tuple(iou.shape)} {iou.dtype}")
    tgt = target[:, 0] if target.dim() == 4 else target
    positive = valid & (tgt > 0) & (tgt != ignore_index)
    with torch.no_grad():
        scaled = iou.to(ce.dtype).clamp(0, 1) ** eta * positive
        den = (scaled * ce).sum()
        norm = torch.where(
            den > 0, (ce * positive).sum() / den.clamp_min(torch.finfo(ce.dtype).tiny), torch.zeros_like(den)
        )
        weight = torch.where(positive, scaled * norm, valid.to(ce.dtype))
    return (weight * ce).sum() / valid.sum().clamp_min(1).to(ce.dtype)
