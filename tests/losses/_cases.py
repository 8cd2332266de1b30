"""Shared inputs for the loss tests: which registered losses take which modes and extra inputs."""

from __future__ import annotations

import inspect

import torch

from segkit.losses import LOSSES
from segkit.losses import functional as fn
from segkit.losses import functional_distance as fd
from segkit.losses import functional_lovasz as fl
from segkit.losses import functional_region as fr

# name -> pure function; the module/function parity test needs one entry per registered name.
FUNCTIONAL = {
    "ce": lambda x, y, mode="multiclass", **kw: (
        fn.binary_cross_entropy(x, y, **kw) if mode == "binary" else fn.cross_entropy(x, y, **kw)
    ),
    "weighted_ce": lambda x, y, mode="multiclass", **kw: (
        fn.binary_cross_entropy(x, y, **kw) if mode == "binary" else fn.cross_entropy(x, y, **kw)
    ),
    "topk_ce": fn.topk_cross_entropy,
    "dist_penalized_ce": fd.distance_penalized_cross_entropy,
    "focal": fn.focal_loss,
    "dice": fr.dice_loss,
    "jaccard": fr.jaccard_loss,
    "tversky": fr.tversky_loss,
    "sensitivity_specificity": fr.sensitivity_specificity_loss,
    "lovasz_softmax": lambda x, y, mode="multiclass", **kw: fl.lovasz_softmax_loss(x, y, **kw),
    "lovasz": lambda x, y, mode="multiclass", **kw: fl.lovasz_softmax_loss(x, y, **kw),
    "lovasz_hinge": lambda x, y, mode="binary", **kw: fl.lovasz_hinge_loss(x, y, **kw),
    "boundary": fd.boundary_loss,
    "hausdorff_dt": fd.hausdorff_dt_loss,
    "iou_balanced": fn.iou_balanced_loss,
}


def takes_outputs(name: str) -> bool:
    """True for losses called on the model's raw outputs (e.g. Gated-SCNN's tuple), not ``(logits, target)``."""
    return bool(getattr(LOSSES.get(name), "takes_outputs", False))


def modes(name: str) -> list[str]:
    """The modes a registered loss supports: its ``mode`` class attribute, or both when it takes ``mode=``."""
    cls = LOSSES.get(name)
    fixed = getattr(cls, "mode", None)
    if isinstance(fixed, str):
        return [fixed]
    if "mode" in inspect.signature(cls).parameters:
        return ["multiclass", "binary"]
    return ["multiclass"]


def cases() -> list[tuple[str, str]]:
    """Every (registered name, mode) pair, the registry being the source of truth."""
    return [(n, m) for n in LOSSES.names() for m in modes(n)]


def build(name: str, mode: str) -> torch.nn.Module:
    """The loss module with its registry defaults (plus ``mode`` where it takes one)."""
    cls = LOSSES.get(name)
    kwargs = {"mode": mode} if "mode" in inspect.signature(cls).parameters else {}
    return LOSSES.build(name, **kwargs)


def inputs(
    mode: str, n: int = 2, c: int = 3, h: int = 5, w: int = 6, dtype: torch.dtype = torch.float64, seed: int = 0
):
    """Random logits and a target with every class present and a few ignored pixels."""
    g = torch.Generator().manual_seed(seed)
    k = 1 if mode == "binary" else c
    logits = torch.randn(n, k, h, w, generator=g, dtype=dtype)
    labels = 2 if mode == "binary" else c
    target = torch.randint(0, labels, (n, h, w), generator=g)
    target[:, 0, 0] = 255
    target[:, 1, 1] = 0
    target[:, 2, 2] = 1
    return logits, target


def extras(
    name: str, target: torch.Tensor, dtype: torch.dtype = torch.float64, seed: int = 1
) -> dict[str, torch.Tensor]:
    """Required extra keyword inputs (``iou`` for ``iou_balanced``); optional precomputed maps are left out."""
    out = {}
    if "iou" in getattr(LOSSES.get(name), "extra_inputs", ()):
        g = torch.Generator().manual_seed(seed)
        t = target[:, 0] if target.dim() == 4 else target
        out["iou"] = torch.rand(t.shape, generator=g, dtype=dtype)
    return out
