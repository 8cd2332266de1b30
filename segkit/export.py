"""ONNX export of semantic segmentation models (``segkit export``); detectors go to ``export_instance``."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from segkit.export_instance import export_instance_onnx, is_detector

__all__ = ["export_onnx", "model_from_checkpoint"]


def export_onnx(
    model: nn.Module,
    path: str | Path,
    input_size: Sequence[int] = (512, 512),
    in_channels: int = 3,
    opset: int = 17,
    dynamic_batch: bool = True,
) -> Path:
    """Export a model to ONNX: semantic input ``image`` ``(N, in_channels, H, W)``, output ``logits``.

    A detector (Mask R-CNN) is exported by ``segkit.export_instance.export_instance_onnx`` instead (one
    image ``(3, H, W)`` of any size in; ``boxes``, ``labels``, ``scores``, ``masks`` out; ``input_size`` is
    only the traced example's size, ``in_channels`` and ``dynamic_batch`` do not apply); call that to
    record the checkpoint's normalisation and class names in the file.

    For semantic models the graph is traced at ``input_size`` (padding and cropping sizes are fixed at export), so feed
    images of that size; the batch dimension stays dynamic. Uses the TorchScript-based exporter
    (``dynamo=False``): it needs no onnxscript and handles every segkit semantic model.

    Args:
        model: the model; exported in eval mode (its train/eval state is restored afterwards).
        path: output ``.onnx`` file.
        input_size: ``(H, W)`` of the traced input.
        in_channels: image channels.
        opset: ONNX opset version.
        dynamic_batch: keep the batch dimension symbolic.

    Returns:
        The written path.

    Raises:
        ValueError: an ``input_size`` that cannot be exported (pyramid pooling whose bins do not divide
            the map), or a detector with an opset below 11.

    Example:
        >>> export_onnx(build_model("unet", num_classes=3, encoder="resnet18"), "unet.onnx", (256, 256))
    """
    if len(input_size) != 2 or min(input_size) < 1:
        raise ValueError(f"export_onnx: input_size must be (H, W) with positive sizes, got {tuple(input_size)}")
    if is_detector(model):
        return export_instance_onnx(model, path, input_size, opset=opset)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    model.eval()
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    dummy = torch.randn(1, in_channels, int(input_size[0]), int(input_size[1]), device=device)
    axes = {"image": {0: "batch"}, "logits": {0: "batch"}} if dynamic_batch else None
    try:
        with warnings.catch_warnings():
            # The padding wrapper's size arithmetic is constant for a fixed input size: expected.
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            torch.onnx.export(
                model,
                (dummy,),
                str(path),
                input_names=["image"],
                output_names=["logits"],
                dynamic_axes=axes,
                opset_version=opset,
                dynamo=False,
            )
    except torch.onnx.errors.SymbolicValueError as exc:
        if "adaptive_avg_pool2d" not in str(exc):
            raise
        # ONNX has no adaptive pooling: a pyramid-pooling bin must divide the feature map exactly.
        raise ValueError(
            f"export_onnx: at input_size {tuple(input_size)} a pyramid-pooling layer (bins 1, 2, 3, 6) pools a map "
            f"that its bins do not divide, which ONNX cannot express; choose H and W whose feature maps the bins "
            f"divide (PSPNet or a PSP head at stride 8: multiples of 96, e.g. 384, 480; UPerNet at stride 32: "
            f"multiples of 192, e.g. 384, 576)"
        ) from None
    finally:
        model.train(was_training)
    return path


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
    from segkit.checkpoint import CheckpointError, load_checkpoint, load_state_dict_checked, model_weights
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
