"""Softmax statistics with an analytic backward: the one full-size graph node behind the region and map losses."""

from __future__ import annotations

from typing import Any

import torch
from torch.autograd.function import once_differentiable

__all__ = ["softmax_stats"]


def _set_view(values: torch.Tensor, per_image: bool) -> torch.Tensor:
    """``(S, C)`` per-set values as ``(N or 1, C, 1, 1)`` to broadcast over ``(N, C, H, W)``."""
    return values[:, :, None, None] if per_image else values.reshape(1, -1, 1, 1)


def _weighted_channel_sum(p: torch.Tensor, g: torch.Tensor, per_image: bool) -> torch.Tensor:
    """``sum_c p_c g_c`` as ``(N, H, W)`` for per-set channel weights ``g`` ``(S, C)``, as one small matmul
    instead of a full-size product (no ``(N, C, H, W)`` temporary)."""
    n, c = p.shape[:2]
    rows = g.reshape(-1, 1, c).expand(n, 1, c) if not per_image else g.reshape(n, 1, c)
    return torch.matmul(rows, p.reshape(n, c, -1)).reshape(n, *p.shape[2:])


def _channel_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``(a * b).sum(1)`` accumulated one channel at a time: ``(N, H, W)`` temporaries instead of a full-size one."""
    out = a[:, 0] * b[:, 0]
    for k in range(1, a.shape[1]):
        out.addcmul_(a[:, k], b[:, k])
    return out


def _class_sums(p: torch.Tensor, weight: torch.Tensor | None, power: int, per_image: bool) -> torch.Tensor:
    """``(S, C)`` sums of ``p^power [* weight]`` over pixels (and images unless ``per_image``), per channel."""
    n, c = p.shape[:2]
    if weight is None and power == 1:
        return p.sum((2, 3) if per_image else (0, 2, 3)).reshape(-1, c)
    cols = []
    for k in range(c):  # per channel: (N, H, W) temporaries at most, and a fused multiply-add reduction
        term = (p[:, k] * p[:, k] if power == 2 else p[:, k]).reshape(n, -1)
        col = term.sum(1) if weight is None else torch.linalg.vecdot(term, weight[:, k].reshape(n, -1))
        cols.append(col if per_image else col.sum().reshape(1))
    return torch.stack(cols, 1)


class _SoftmaxStats(torch.autograd.Function):
    """Forward: ``p = softmax(x)`` zeroed on ignored pixels, then ``p_y`` and ``sum_valid p^power [* W]`` per set
    and class. Backward: ``grad_x = p * (G - sum_c p G)`` with ``G = dL/dp`` assembled from the two outputs'
    gradients, so autograd never stores or replays full-size intermediate products."""

    @staticmethod
    def forward(
        ctx: Any,
        logits: torch.Tensor,
        labels: torch.Tensor,
        valid: torch.Tensor,
        weight: torch.Tensor | None,
        power: int,
        per_image: bool,
        probs: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if probs is None:
            p = torch.softmax(logits, 1)
            p.mul_(valid.unsqueeze(1).to(p.dtype))
        else:
            p = probs
        p_y = p.gather(1, labels.unsqueeze(1))[:, 0]
        sums = _class_sums(p, weight, power, per_image)
        ctx.save_for_backward(p, labels, p_y, weight)
        ctx.power, ctx.per_image = power, per_image
        ctx.set_materialize_grads(False)  # an unused output then gets None, not a zero tensor to multiply
        return p_y, sums

    @staticmethod
    @once_differentiable  # the backward is not itself differentiable: a double backward raises, not silently 0
    def backward(ctx: Any, grad_py: torch.Tensor | None, grad_sums: torch.Tensor | None) -> tuple[Any, ...]:
        p, labels, p_y, weight = ctx.saved_tensors
        power, per_image = ctx.power, ctx.per_image
        q = torch.zeros_like(p_y) if grad_py is None else grad_py * p_y  # the p_y term: dp_y/dx_c = p_y([c=y] - p_c)
        if grad_sums is None:
            grad = p * (-q).unsqueeze(1)
        elif power == 1 and weight is None:
            # G is a per-set constant: sum_c p_c G_c is a (N, 1, C) x (N, C, HW) matmul.
            s = _weighted_channel_sum(p, grad_sums, per_image) + q
            grad = torch.empty_like(p)
            torch.sub(_set_view(grad_sums, per_image), s.unsqueeze(1), out=grad)
            grad.mul_(p)
        else:
            # G = a_c [* W] [* 2 p], written into the result tensor (p's layout), then p * (G - sum_c p G).
            scale = _set_view(grad_sums * power, per_image)
            grad = torch.empty_like(p)
            torch.mul(p if power == 2 else weight, scale, out=grad)
            if power == 2 and weight is not None:
                grad.mul_(weight)
            s = _channel_dot(p, grad).add_(q)
            grad.sub_(s.unsqueeze(1)).mul_(p)
        grad.scatter_add_(1, labels.unsqueeze(1), q.unsqueeze(1))
        return grad, None, None, None, None, None, None


def softmax_stats(
    logits: torch.Tensor,
    labels: torch.Tensor,
    valid: torch.Tensor,
    weight: torch.Tensor | None = None,
    power: int = 1,
    per_image: bool = False,
    probs: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax probability at the label and per-class sums of ``p^power`` (times an optional constant map).

    Equals, value and gradient, the plain autograd of ``p = softmax(logits, 1) * valid``,
    ``p_y = p.gather(1, labels)``, ``sums = (p**power * weight).sum(...)``, but the backward is the analytic
    softmax Jacobian-vector product ``p * (G - sum_c p G)``: one full-size tensor written instead of autograd's
    chain of products, masks and their gradients.

    Args:
        logits: ``(N, C, H, W)`` float.
        labels: ``(N, H, W)`` int64 in ``[0, C)`` (ignored pixels mapped to any class, e.g. 0).
        valid: ``(N, H, W)`` bool, False on ignored pixels (their ``p`` is 0: they add nothing and get no gradient).
        weight: optional ``(N, C, H, W)`` constant map (no gradient flows into it).
        power: 1 or 2.
        per_image: sums per image (``S = N``) or over the batch (``S = 1``).
        probs: ``softmax(logits, 1)`` already zeroed on ignored pixels, when the caller computed it without
            gradient (saves recomputing it); it is kept for the backward and must not be modified afterwards.

    Returns:
        ``p_y`` ``(N, H, W)`` (0 on ignored pixels) and ``sums`` ``(S, C)``.
    """
    if power not in (1, 2):
        raise ValueError(f"power: expected 1 or 2, got {power}")
    w = None if weight is None else weight.detach()
    out: tuple[torch.Tensor, torch.Tensor] = _SoftmaxStats.apply(
        logits, labels, valid, w, power, per_image, None if probs is None else probs.detach()
    )
    return out
