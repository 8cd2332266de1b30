"""Segmentation models, built by name: ``build_model("unet", encoder="resnet18", num_classes=4)``."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from torch import nn

# Each family module registers its models on import; import every one explicitly so that
# every built-in name is always available.
from segkit.models import ddrnet, fastfcn, gated_scnn, mask_rcnn, pidnet, segnet, smp  # noqa: F401
from segkit.models.registry import MODELS

__all__ = ["MODELS", "WEIGHT_ARGUMENTS", "build_model", "model_config"]

# Arguments that only say where the initial weights come from. A model rebuilt from a checkpoint gets the
# checkpoint's weights instead, so these are neither recorded nor re-applied (no download, works offline).
WEIGHT_ARGUMENTS = ("weights", "weights_key", "encoder_weights", "weights_backbone")


def build_model(name: str | nn.Module, **kwargs: Any) -> nn.Module:
    """Build a registered model by name, or return ``name`` unchanged if it is already a module.

    The model records how it was built in ``model.model_config``: ``{"name": name, **kwargs}`` as plain
    (JSON) data, without the ``WEIGHT_ARGUMENTS``. The Trainer stores it in every checkpoint, so
    ``Predictor.from_checkpoint`` and ``segkit export`` rebuild the model without a config file (like
    Hugging Face's ``config.json`` or timm's ``pretrained_cfg``). It is None when an argument is not plain
    data (a module, a function): such a model is rebuilt by hand.

    Args:
        name: a registered name (see ``segkit list models``) or an ``nn.Module``.
        **kwargs: keyword arguments of that model (``num_classes``, ``encoder``, ...).

    Returns:
        The model. Semantic models map ``(N, 3, H, W)`` float images to ``(N, num_classes, H, W)`` logits.

    Example:
        >>> model = build_model("unet", encoder="resnet18", num_classes=4, encoder_weights=None)
        >>> model.model_config
        {'name': 'unet', 'encoder': 'resnet18', 'num_classes': 4}
    """
    if isinstance(name, nn.Module):
        if kwargs:
            raise TypeError("build_model: keyword arguments are only accepted with a model name")
        return name
    model = MODELS.build(name, **kwargs)
    setattr(model, "model_config", _plain_config(name, kwargs))  # noqa: B010 (plain attribute on an nn.Module)
    return model


def model_config(model: nn.Module) -> dict[str, Any] | None:
    """The ``{"name": ..., **kwargs}`` that ``build_model`` recorded on ``model`` (a copy), or None for a
    module built otherwise (then a checkpoint of it holds only weights)."""
    config = getattr(model, "model_config", None)
    return dict(config) if isinstance(config, Mapping) and "name" in config else None


def _plain_config(name: str, kwargs: Mapping[str, Any]) -> dict[str, Any] | None:
    kept = {k: v for k, v in kwargs.items() if k not in WEIGHT_ARGUMENTS}

    def plain(value: Any) -> Any:  # numpy numbers and paths have a plain equivalent; anything else has none
        if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
            return value.item()
        if isinstance(value, os.PathLike):
            return os.fspath(value)
        raise TypeError(type(value).__name__)

    try:  # JSON round trip: tuples become lists, as in a YAML config
        config: dict[str, Any] = json.loads(json.dumps({"name": name, **kept}, default=plain))
    except (TypeError, ValueError):
        return None
    return config
