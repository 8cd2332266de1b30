"""Segmentation losses by name: ``build_loss("ce")``, ``build_loss("ce+dice")``, ``build_loss({"ce": 1, "dice": .5})``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

# Each family module registers its losses on import; import every one explicitly.
from segkit.losses import (  # noqa: F401
    cross_entropy,
    distance,
    focal,
    gated_scnn,
    iou_balanced,
    lovasz,
    ohem,
    realtime,
    region,
)
from segkit.losses.class_presence import ClassPresenceLoss, class_presence, class_presence_loss
from segkit.losses.combined import CombinedLoss
from segkit.losses.registry import LOSSES

__all__ = [
    "LOSSES",
    "ClassPresenceLoss",
    "CombinedLoss",
    "build_loss",
    "class_presence",
    "class_presence_loss",
    "loss_weights",
]


def loss_weights(name: str | Mapping[str, float]) -> dict[str, float] | None:
    """The terms of a combined loss and their weights, or None for a single loss name.

    Args:
        name: ``"ce"`` (None), ``"ce+dice"`` (``{"ce": 1.0, "dice": 1.0}``) or ``{"ce": 1, "dice": 0.5}``.

    Returns:
        ``{term: weight}`` with float weights, or None.
    """
    if isinstance(name, str):
        return {part.strip(): 1.0 for part in name.split("+") if part.strip()} if "+" in name else None
    return {str(k): float(v) for k, v in name.items()}


def build_loss(name: str | Mapping[str, float] | nn.Module, **kwargs: Any) -> nn.Module:
    """Build a loss by name, as a weighted sum of names, or pass a module through.

    Args:
        name: a registered name (``"dice"``), names joined by ``+`` with equal weights
            (``"ce+dice"``), a mapping ``{name: weight}``, or an ``nn.Module``.
        **kwargs: keyword arguments of a single named loss. For combinations, pass
            per-term arguments as ``{name: {...}}`` mappings, e.g. ``dice={"smooth": 1.0}``.

    Returns:
        A module called as ``loss(logits, target)`` returning a scalar tensor.
        Combinations are ``CombinedLoss`` modules whose ``forward_terms`` returns each weighted term.
    """
    if isinstance(name, nn.Module):
        if kwargs:
            raise TypeError("build_loss: keyword arguments are only accepted with a loss name")
        return name
    if not isinstance(name, (str, Mapping)):
        raise TypeError(f"build_loss: expected a name, a mapping or an nn.Module, got {type(name).__name__}")
    weights = loss_weights(name)
    if weights is None:
        return LOSSES.build(str(name).strip(), **kwargs)
    unknown = set(kwargs) - set(weights)
    if unknown:
        raise TypeError(
            f"build_loss: for a combination, keyword arguments must be per-term mappings named after a "
            f"term ({', '.join(weights)}); got {', '.join(sorted(unknown))}"
        )
    terms = {n: LOSSES.build(n, **dict(kwargs.get(n) or {})) for n in weights}
    return CombinedLoss(terms, weights)
