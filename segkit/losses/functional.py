"""Loss functions as pure functions on logits and integer targets (the contract of every segkit loss)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["check_multiclass_inputs", "cross_entropy"]


def check_multiclass_inputs(logits: torch.Tensor, target: torch.Tensor, ignore_index: int) -> None:
    """Raise ``ValueError`` unless logits are ``(N, C, H, W)`` float and target ``(N, H, W)`` int64 in range.

    Labels must lie in ``[0, C)`` or equal ``ignore_index``. This costs one device sync; it
    replaces a device-side assert whose message names neither the value nor the input.
    """
    if logits.dim() != 4 or not logits.is_floating_point():
        raise ValueError(f"logits: expected a float tensor of shape (N, C, H, W), got {tuple(logits.shape)} {logits.dtype}")
    n, c, h, w = logits.shape
    if target.shape != (n, h, w) or target.dtype != torch.int64:
        raise ValueError(
            f"target: expected int64 of shape {(n, h, w)} to match logits {tuple(logits.shape)}, "
            f"got {tuple(target.shape)} {target.dtype}"
        )
    bad = (target != ignore_index) & ((target < 0) | (target >= c))
    if bool(bad.any()):
        value = int(target[bad][0])
        raise ValueError(f"target: label {value} is outside [0, {c}) and is not ignore_index={ignore_index}")


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
    check_multiclass_inputs(logits, target, ignore_index)
    per_pixel = F.cross_entropy(
        logits, target, weight=weight, ignore_index=ignore_index, reduction="none", label_smoothing=label_smoothing
    )
    valid = target != ignore_index
    if weight is None:
        denom = valid.sum()
    else:
        denom = weight.to(logits.dtype)[target.clamp(0, logits.shape[1] - 1)].masked_fill(~valid, 0).sum()
    return per_pixel.sum() / denom.clamp_min(1e-12).to(per_pixel.dtype)
