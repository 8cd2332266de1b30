"""Training losses of the real-time two-branch models: DDRNet's deep supervision, PIDNet's boundary-aware loss."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from segkit.losses.functional import cross_entropy
from segkit.losses.gated_scnn import boundary_target
from segkit.losses.ohem import ohem_ce
from segkit.losses.registry import LOSSES

__all__ = ["DDRNetLoss", "PIDNetLoss", "balanced_boundary_bce", "ddrnet_loss", "pidnet_loss"]


def _upcast(x: torch.Tensor) -> torch.Tensor:
    """Half-precision logits (autocast) to float32; float32/float64 unchanged."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _outputs(
    outputs: torch.Tensor | Sequence[torch.Tensor], count: int, name: str
) -> tuple[torch.Tensor, list[torch.Tensor | None]]:
    """The main logits and the ``count - 1`` other outputs; a tensor alone (eval mode, no aux heads) has
    None for the others."""
    if isinstance(outputs, torch.Tensor):
        return outputs, [None] * (count - 1)
    if (
        isinstance(outputs, (tuple, list))
        and len(outputs) == count
        and all(isinstance(o, torch.Tensor) for o in outputs)
    ):
        return outputs[0], list(outputs[1:])
    got = type(outputs).__name__ + (f" of {len(outputs)}" if isinstance(outputs, (tuple, list)) else "")
    raise ValueError(
        f"{name}: expected the logits tensor or a tuple of {count} tensors (the model's training outputs), got {got}"
    )


def ddrnet_loss(
    outputs: torch.Tensor | Sequence[torch.Tensor],
    target: torch.Tensor,
    aux_weight: float = 0.4,
    thresh: float = 0.9,
    min_kept: int = 131_072,
    ignore_index: int = 255,
    weight: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """DDRNet's deep-supervised loss: OHEM CE on the main logits plus ``aux_weight`` times OHEM CE on the
    auxiliary head's (Hong et al. 2021; the mmseg/official Cityscapes recipe: 0.4, thresh 0.9, 131072 kept).

    Args:
        outputs: ``(main, aux)`` logits ``(N, C, H, W)`` each (training mode), or the main logits alone.
        target: ``(N, H, W)`` int64 labels.
        aux_weight: weight of the auxiliary term.
        thresh: OHEM probability threshold (see ``ohem_ce``).
        min_kept: OHEM minimum number of kept pixels per batch.
        ignore_index: label excluded from the loss.
        weight: optional ``(C,)`` class weights of both OHEM terms (``ohem_ce``'s ``weight``).

    Returns:
        ``{"main": ..., "aux": ...}`` already weighted (the loss is their sum); ``aux`` is 0 without aux logits.
    """
    main, (aux,) = _outputs(outputs, 2, "ddrnet_loss")
    main_term = ohem_ce(_upcast(main), target, thresh, min_kept, ignore_index, weight)
    if aux is None:
        return {"main": main_term, "aux": main_term.new_zeros(())}
    aux_term = ohem_ce(_upcast(aux), target, thresh, min_kept, ignore_index, weight)
    return {"main": main_term, "aux": aux_weight * aux_term}


def balanced_boundary_bce(boundary_logits: torch.Tensor, edges: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Class-balanced BCE over the valid pixels: boundary pixels weighted ``|neg| / |V|``, others ``|pos| / |V|``,
    summed and divided by ``|V|`` (PIDNet's and Gated-SCNN's ``weighted_bce``, ignored pixels left out).

    Args:
        boundary_logits: ``(N, H, W)`` float.
        edges: ``(N, H, W)`` bool boundary target.
        valid: ``(N, H, W)`` bool mask of pixels that count.

    Returns:
        Scalar tensor; 0 with zero gradient when no pixel is valid.
    """
    dtype = boundary_logits.dtype
    edges = edges & valid
    num_valid = valid.sum().to(dtype)
    num_pos = edges.sum().to(dtype)
    denom = num_valid.clamp_min(1)
    weight = torch.where(edges, num_valid - num_pos, num_pos) / denom * valid
    bce = F.binary_cross_entropy_with_logits(boundary_logits, edges.to(dtype), reduction="none")
    return (weight * bce).sum() / denom


def pidnet_loss(
    outputs: torch.Tensor | Sequence[torch.Tensor],
    target: torch.Tensor,
    aux_weight: float = 0.4,
    boundary_weight: float = 20.0,
    bas_weight: float = 1.0,
    bas_threshold: float = 0.8,
    thresh: float = 0.9,
    min_kept: int = 131_072,
    boundary_radius: int = 2,
    ignore_index: int = 255,
    weight: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """PIDNet's four-term loss (Xu et al. 2023, eq. 9-12; weights of the official Cityscapes recipe).

    - ``main``: OHEM CE on the main logits.
    - ``p_aux``: ``aux_weight`` x CE on the P branch's logits (plain CE, as in the official code and mmseg).
    - ``boundary``: ``boundary_weight`` x class-balanced BCE (``balanced_boundary_bce``) of the D head against
      boundaries derived from the mask: valid pixels with a differently labelled valid pixel within
      ``boundary_radius`` (``boundary_target``; radius 2 gives a band about 4 pixels wide, like the
      reference's Canny edges dilated by a 4x4 kernel). Ignored pixels are left out.
    - ``bas`` (boundary-awareness): ``bas_weight`` x OHEM CE on the main logits over the pixels where the
      predicted boundary probability exceeds ``bas_threshold``; the selection carries no gradient.

    Args:
        outputs: ``(main, p_aux, boundary)`` logits (``(N, C, H, W)``, ``(N, C, H, W)``, ``(N, 1, H, W)``),
            the model's training outputs, or the main logits alone (then only ``main``; the rest are 0).
        target: ``(N, H, W)`` int64 labels.
        aux_weight: weight of the P-branch term (0.4).
        boundary_weight: weight of the boundary BCE (20).
        bas_weight: weight of the boundary-awareness term (1).
        bas_threshold: boundary probability above which a pixel enters the boundary-awareness term (0.8).
        thresh: OHEM probability threshold (0.9).
        min_kept: OHEM minimum number of kept pixels per batch (131072).
        boundary_radius: half-width of the neighbourhood that makes a pixel a boundary pixel.
        ignore_index: label excluded from every term.
        weight: optional ``(C,)`` class weights of the three semantic terms (``main``, ``p_aux``, ``bas``:
            ``ohem_ce``'s and ``weighted_ce``'s weighted means); the boundary term has no classes.

    Returns:
        ``{"main", "p_aux", "boundary", "bas"}`` scalars, already weighted (the loss is their sum); each
        0 with zero gradient when every pixel is ignored.
    """
    raw_main, (p_aux, boundary) = _outputs(outputs, 3, "pidnet_loss")
    main = _upcast(raw_main)
    terms = {"main": ohem_ce(main, target, thresh, min_kept, ignore_index, weight)}
    zero = terms["main"].new_zeros(())
    terms["p_aux"] = (
        aux_weight * cross_entropy(_upcast(p_aux), target, weight, ignore_index=ignore_index)
        if p_aux is not None
        else zero
    )
    if boundary is None:
        return {**terms, "boundary": zero, "bas": zero}
    n, _, h, w = main.shape
    if boundary.shape != (n, 1, h, w) or not boundary.is_floating_point():
        raise ValueError(
            f"pidnet_loss: boundary logits: expected a float tensor of shape {(n, 1, h, w)}, "
            f"got {tuple(boundary.shape)} {boundary.dtype}"
        )
    d = _upcast(boundary[:, 0])
    valid = target != ignore_index
    edges = boundary_target(target, ignore_index, boundary_radius)
    terms["boundary"] = boundary_weight * balanced_boundary_bce(d, edges, valid)
    # sigmoid(d) > t  <=>  d > logit(t): no sigmoid map needed, and no gradient through the selection.
    on_boundary = d.detach() > math.log(bas_threshold / (1.0 - bas_threshold))
    bas_target = torch.where(on_boundary, target, torch.full_like(target, ignore_index))
    terms["bas"] = bas_weight * ohem_ce(main, bas_target, thresh, min_kept, ignore_index, weight)
    return terms


@LOSSES.register("ddrnet_loss")
class DDRNetLoss(nn.Module):
    """DDRNet's deep-supervised OHEM loss; ``ddrnet_loss`` in the registry (DDRNet's ``default_loss``).

    Takes the model's raw outputs (``takes_outputs = True``): ``(main, aux)`` in training mode or the main
    logits alone. The Trainer logs ``loss/main`` and ``loss/aux``. See ``ddrnet_loss`` for the arguments.

    Shape:
        outputs ``((N, C, H, W), (N, C, H, W))`` or ``(N, C, H, W)``, target ``(N, H, W)`` int64 -> scalar.
    """

    takes_outputs = True
    weight: torch.Tensor | None

    def __init__(
        self,
        aux_weight: float = 0.4,
        thresh: float = 0.9,
        min_kept: int = 131_072,
        ignore_index: int = 255,
        weight: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        self.aux_weight, self.thresh, self.min_kept, self.ignore_index = aux_weight, thresh, min_kept, ignore_index
        self.register_buffer("weight", None if weight is None else torch.as_tensor(weight, dtype=torch.float32))

    def forward_terms(
        self, outputs: torch.Tensor | Sequence[torch.Tensor], target: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Return ``{"main": ..., "aux": ...}`` (already weighted; the loss is their sum)."""
        return ddrnet_loss(outputs, target, self.aux_weight, self.thresh, self.min_kept, self.ignore_index, self.weight)

    def forward(self, outputs: torch.Tensor | Sequence[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        """Return the scalar loss (sum of the terms)."""
        terms = self.forward_terms(outputs, target)
        return terms["main"] + terms["aux"]


@LOSSES.register("pidnet_loss")
class PIDNetLoss(nn.Module):
    """PIDNet's boundary-aware loss; ``pidnet_loss`` in the registry (PIDNet's ``default_loss``).

    Takes the model's raw outputs (``takes_outputs = True``): ``(main, p_aux, boundary)`` in training mode
    or the main logits alone. The Trainer logs ``loss/main``, ``loss/p_aux``, ``loss/boundary`` and
    ``loss/bas``. See ``pidnet_loss`` for the definition and the arguments.

    Shape:
        outputs ``((N, C, H, W), (N, C, H, W), (N, 1, H, W))`` or ``(N, C, H, W)``, target ``(N, H, W)``
        int64 -> scalar.
    """

    takes_outputs = True
    weight: torch.Tensor | None

    def __init__(
        self,
        aux_weight: float = 0.4,
        boundary_weight: float = 20.0,
        bas_weight: float = 1.0,
        bas_threshold: float = 0.8,
        thresh: float = 0.9,
        min_kept: int = 131_072,
        boundary_radius: int = 2,
        ignore_index: int = 255,
        weight: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        self.register_buffer("weight", None if weight is None else torch.as_tensor(weight, dtype=torch.float32))
        if not 0.0 < bas_threshold < 1.0:
            raise ValueError(f"pidnet_loss: bas_threshold must be a probability in (0, 1), got {bas_threshold}")
        self.aux_weight, self.boundary_weight, self.bas_weight = aux_weight, boundary_weight, bas_weight
        self.bas_threshold, self.thresh, self.min_kept = bas_threshold, thresh, min_kept
        self.boundary_radius, self.ignore_index = boundary_radius, ignore_index

    def forward_terms(
        self, outputs: torch.Tensor | Sequence[torch.Tensor], target: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Return ``{"main", "p_aux", "boundary", "bas"}`` (already weighted; the loss is their sum)."""
        return pidnet_loss(
            outputs, target, self.aux_weight, self.boundary_weight, self.bas_weight, self.bas_threshold,
            self.thresh, self.min_kept, self.boundary_radius, self.ignore_index, self.weight,
        )  # fmt: skip

    def forward(self, outputs: torch.Tensor | Sequence[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        """Return the scalar loss (sum of the four terms)."""
        return torch.stack(list(self.forward_terms(outputs, target).values())).sum()
