"""A model rebuilt from a segkit checkpoint: the one function that does it (Predictor, segkit predict, export and
evaluate call it)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from segkit.checkpoint import CheckpointError, load_checkpoint, load_state_dict_checked, model_weights

__all__ = ["model_from_checkpoint"]


def model_from_checkpoint(
    path: str | Path, checkpoint: Mapping[str, Any] | None = None, model_config: Mapping[str, Any] | None = None
) -> nn.Module:
    """Rebuild the model stored in a segkit checkpoint and load its weights: the one function that does it
    (``Predictor.from_checkpoint``, ``segkit predict``, ``segkit export`` and ``segkit evaluate`` call it).

    The model is named by, in order: the ``model`` block of the config stored in the checkpoint, the
    ``model_config`` that ``build_model`` recorded on the trained model (every Trainer checkpoint holds it,
    also of a Trainer built in Python without a config), or ``model_config`` given here.
    Pretrained-weight options (``encoder_weights``, ``weights``, ``weights_backbone``, ``weights_key``) are
    dropped: the checkpoint's own weights replace them, so nothing is downloaded.

    Args:
        path: the checkpoint file (named in errors).
        checkpoint: the dict already loaded from ``path`` (saves reading it twice), or None.
        model_config: the ``model`` block (``{name: ..., **kwargs}``) to use when the checkpoint describes
            no model (a plain state dict with ``segkit evaluate --config``); the checkpoint's own wins.

    Returns:
        The model with the checkpoint's weights; a Mask R-CNN trained from ``weights="coco"`` with
        91 classes keeps the COCO category names.

    Raises:
        CheckpointError: unreadable file, no model description inside (the weights of a model not built
            by ``build_model``), or weights that do not fit.
    """
    from segkit.models import WEIGHT_ARGUMENTS, build_model

    ckpt = load_checkpoint(path) if checkpoint is None else checkpoint
    recorded = not (ckpt.get("config") or {}).get("model") and bool(ckpt.get("model_config"))
    model_cfg = dict((ckpt.get("config") or {}).get("model") or ckpt.get("model_config") or model_config or {})
    if "name" not in model_cfg:
        raise CheckpointError(
            f"{path}: no model config inside (a plain state dict, or a model not made by build_model); build "
            f"the model yourself and load the weights (then Predictor(model) or export_onnx(model, ...))"
        )
    name = model_cfg.pop("name")
    dropped = {key: model_cfg.pop(key) for key in WEIGHT_ARGUMENTS if key in model_cfg}
    if model_cfg.get("num_classes") is None and not recorded:  # as recorded: the builder's default was used
        model_cfg["num_classes"] = ckpt.get("num_classes")
    model = build_model(name, **model_cfg)
    state = model_weights(ckpt, source=str(path))  # the EMA weights when the run kept them: those chose best.pt
    _match_frozen_norms(model, state)
    load_state_dict_checked(model, state, source=str(path))
    if dropped.get("weights") == "coco" and getattr(model, "class_names", "") is None:
        from segkit.models.mask_rcnn import COCO_CATEGORIES

        if model_cfg.get("num_classes") == len(COCO_CATEGORIES):
            setattr(model, "class_names", list(COCO_CATEGORIES))  # noqa: B010 (plain attribute on an nn.Module)
    return model


def _match_frozen_norms(model: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """Swap each BatchNorm2d the checkpoint saved as a FrozenBatchNorm2d (no ``num_batches_tracked``).

    Pretrained detection backbones (COCO or ImageNet weights) use frozen BatchNorm, which a model
    rebuilt without those weights lacks; matching the layout lets the weights load with no download.
    """
    from torchvision.ops import FrozenBatchNorm2d

    for name, module in list(model.named_modules()):
        if (
            isinstance(module, nn.BatchNorm2d)
            and f"{name}.weight" in state
            and f"{name}.num_batches_tracked" not in state
        ):
            parent, _, child = name.rpartition(".")
            frozen = FrozenBatchNorm2d(module.num_features, eps=module.eps)
            setattr(model.get_submodule(parent) if parent else model, child, frozen)
