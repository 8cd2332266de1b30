"""Segmentation models, built by name: ``build_model("unet", encoder="resnet18", num_classes=4)``."""

from __future__ import annotations

from typing import Any

from torch import nn

from segkit.registry import Registry

MODELS: Registry[nn.Module] = Registry("models")

# Each family module registers its models on import; import every one explicitly so that
# every built-in name is always available.
from segkit.models import fastfcn, gated_scnn, mask_rcnn, segnet, smp  # noqa: E402,F401

__all__ = ["MODELS", "build_model"]


def build_model(name: str | nn.Module, **kwargs: Any) -> nn.Module:
    """Build a registered model by name, or return ``name`` unchanged if it is already a module.

    Args:
        name: a registered name (see ``segkit list models``) or an ``nn.Module``.
        **kwargs: keyword arguments of that model (``num_classes``, ``encoder``, ...).

    Returns:
        The model. Semantic models map ``(N, 3, H, W)`` float images to ``(N, num_classes, H, W)`` logits.

    Example:
        >>> model = build_model("unet", encoder="resnet18", num_classes=4, encoder_weights=None)
    """
    if isinstance(name, nn.Module):
        if kwargs:
            raise TypeError("build_model: keyword arguments are only accepted with a model name")
        return name
    return MODELS.build(name, **kwargs)
