"""Gated-SCNN's dual-task loss: segmentation cross-entropy + class-balanced boundary BCE on mask-derived edges."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from segkit.losses.functional import cross_entropy
from segkit.losses.registry import LOSSES

__all__ = ["GatedSCNNLoss", "boundary_target", "gated_scnn_loss"]


def _upcast(x: torch.Tensor) -> torch.Tensor:
    """Half-precision logits (autocast) to float32; float32/float64 unchanged."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def boundary_target(target: torch.Tensor, ignore_index: int = 255, radius: int = 1) -> torch.Tensor:
    """Mark the pixels that have a differently labelled valid pixel within ``radius`` (Chebyshev distance).

    Ignored pixels are neither boundary themselves nor make their neighbours boundary.

    Args:
        target: ``(N, H, W)`` int64 labels.
        ignore_index: label of pixels to leave out.
        radius: half-width of the square neighbourhood (1 = 3x3).

    Returns:
        ``(N, H, W)`` bool boundary map (False on ignored pixels).
    """
    valid = target != ignore_index
    t = target.to(torch.float32)
    k = 2 * radius + 1
    # Max and min of the valid neighbours: ignored pixels are replaced by values that never win.
    high = F.max_pool2d(t.masked_fill(~valid, -1.0)[:, None], k, 1, radius)[:, 0]
    low = -F.max_pool2d((-t).masked_fill(~valid, -float(2**24))[:, None], k, 1, radius)[:, 0]
    return valid & ((high != t) | (low != t))


def gated_scnn_loss(
    seg_logits: torch.Tensor,
    edge_logits: torch.Tensor | None,
    target: torch.Tensor,
    edge_weight: float = 20.0,
    ignore_index: int = 255,
    boundary_radius: int = 1,
) -> dict[str, torch.Tensor]:
    """Return the two weighted terms of the Gated-SCNN loss.

    ``seg = CE(seg_logits, target)`` over valid pixels. ``edge = edge_weight * sum_V w_p BCE(edge_p, b_p) / |V|``
    with ``b = boundary_target(target)`` and the class-balancing weights of the reference code:
    ``w = |neg| / |V|`` on boundary pixels and ``|pos| / |V|`` elsewhere (counted over the batch).

    Args:
        seg_logits: ``(N, C, H, W)`` float.
        edge_logits: ``(N, 1, H, W)`` float boundary logits, or None (the edge term is then 0).
        target: ``(N, H, W)`` int64 labels in ``[0, C)`` or ``ignore_index``.
        edge_weight: weight of the boundary term (20 in the reference implementation).
        ignore_index: label excluded from both terms.
        boundary_radius: neighbourhood half-width used to derive boundaries from the mask.

    Returns:
        ``{"seg": scalar, "edge": scalar}``; both 0 with zero gradient when every pixel is ignored.
    """
    seg = cross_entropy(seg_logits, target, ignore_index=ignore_index)
    if edge_logits is None:
        return {"seg": seg, "edge": seg.new_zeros(())}
    n, _, h, w = seg_logits.shape
    if edge_logits.shape != (n, 1, h, w) or not edge_logits.is_floating_point():
        raise ValueError(
            f"edge_logits: expected a float tensor of shape {(n, 1, h, w)}, got {tuple(edge_logits.shape)} {edge_logits.dtype}"
        )
    valid = target != ignore_index
    edges = boundary_target(target, ignore_index, boundary_radius)
    num_valid = valid.sum()
    num_pos = edges.sum()
    num_neg = num_valid - num_pos
    denom = num_valid.clamp_min(1).to(edge_logits.dtype)
    weight = torch.where(edges, num_neg.to(edge_logits.dtype), num_pos.to(edge_logits.dtype)) / denom
    weight = weight * valid
    logits = _upcast(edge_logits[:, 0])
    bce = F.binary_cross_entropy_with_logits(logits, edges.to(logits.dtype), reduction="none")
    edge = edge_weight * (weight * bce).sum() / denom
    return {"seg": seg, "edge": edge}


@LOSSES.register("gated_scnn_loss")
class GatedSCNNLoss(nn.Module):
    """Gated-SCNN dual-task loss; ``gated_scnn_loss`` in the registry (the model's ``default_loss``).

    It takes the model's raw outputs (``takes_outputs = True``): the tuple ``(seg_logits, edge_logits)``
    of train mode, or seg logits alone (then only the segmentation term). The Trainer logs both terms.

    Args:
        edge_weight: weight of the boundary BCE (20, as in the reference code).
        ignore_index: label excluded from the loss (255).
        boundary_radius: neighbourhood half-width for the mask-derived boundaries.

    Shape:
        outputs ``((N, C, H, W), (N, 1, H, W))`` or ``(N, C, H, W)``, target ``(N, H, W)`` int64 -> scalar.
    """

    takes_outputs = True

    def __init__(self, edge_weight: float = 20.0, ignore_index: int = 255, boundary_radius: int = 1) -> None:
        super().__init__()
        self.edge_weight = edge_weight
        self.ignore_index = ignore_index
        self.boundary_radius = boundary_radius

    def forward_terms(
        self, outputs: torch.Tensor | Sequence[torch.Tensor], target: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Return ``{"seg": ..., "edge": ...}`` (already weighted; the loss is their sum)."""
        if isinstance(outputs, torch.Tensor):
            seg, edge = outputs, None
        elif isinstance(outputs, (tuple, list)) and len(outputs) == 2:
            seg, edge = outputs[0], outputs[1]
        else:
            raise ValueError("gated_scnn_loss: expected seg logits or a (seg_logits, edge_logits) pair")
        return gated_scnn_loss(_upcast(seg), edge, target, self.edge_weight, self.ignore_index, self.boundary_radius)

    def forward(self, outputs: torch.Tensor | Sequence[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        """Return the scalar loss (sum of both terms)."""
        terms = self.forward_terms(outputs, target)
        return terms["seg"] + terms["edge"]
