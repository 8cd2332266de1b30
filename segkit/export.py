"""ONNX export of semantic segmentation models (``segkit export``)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

__all__ = ["export_onnx", "model_from_checkpoint"]


def export_onnx(
    model: nn.Module,
    path: str | Path,
    input_size: Sequence[int] = (512, 512),
    in_channels: int = 3,
    opset: int = 17,
    dynamic_batch: bool = True,
) -> Path:
    """Export a semantic model to ONNX: input ``image`` ``(N, in_channels, H, W)``, output ``logits``.

    The graph is traced at ``input_size`` (padding and cropping sizes are fixed at export), so feed
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
        ValueError: a detection model, or an ``input_size`` that cannot be exported (pyramid pooling
            whose bins do not divide the map).

    Example:
        >>> export_onnx(build_model("unet", num_classes=3, encoder="resnet18"), "unet.onnx", (256, 256))
    """
    if len(input_size) != 2 or min(input_size) < 1:
        raise ValueError(f"export_onnx: input_size must be (H, W) with positive sizes, got {tuple(input_size)}")
    if hasattr(model, "roi_heads"):
        raise ValueError(
            "export_onnx: exports semantic models; for Mask R-CNN use torchvision's detection export "
            "(torch.onnx.export with a list of images, see torchvision's docs)"
        )
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


def model_from_checkpoint(path: str | Path) -> nn.Module:
    """Rebuild the model stored in a segkit checkpoint (its config names it) and load its weights.

    Pretrained-weight options in the stored config (``encoder_weights``, ``weights``) are dropped:
    the checkpoint's own weights replace them, so nothing is downloaded.

    Raises:
        CheckpointError: unreadable file, no model config inside, or weights that do not fit.
    """
    from segkit.engine.checkpoint import CheckpointError, load_checkpoint, load_state_dict_checked
    from segkit.models import build_model

    ckpt = load_checkpoint(path)
    model_cfg = dict((ckpt.get("config") or {}).get("model") or {})
    if "name" not in model_cfg:
        raise CheckpointError(
            f"{path}: no model config inside (a plain state dict?); build the model and call export_onnx"
        )
    name = model_cfg.pop("name")
    for key in ("encoder_weights", "weights", "weights_backbone"):
        model_cfg.pop(key, None)
    model_cfg.setdefault("num_classes", ckpt.get("num_classes"))
    model = build_model(name, **model_cfg)
    load_state_dict_checked(model, ckpt["model"], source=str(path))
    return model
