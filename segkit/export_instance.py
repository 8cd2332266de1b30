"""ONNX export of instance models (Mask R-CNN): one image in, boxes, labels, scores and masks out."""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["INSTANCE_OUTPUTS", "export_instance_onnx", "input_normalization", "is_detector"]

INSTANCE_OUTPUTS = ("boxes", "labels", "scores", "masks")
# torchvision's detection post-processing (NMS, RoIAlign, the mask paste loop) needs opset 11 or later.
MIN_OPSET = 11


def is_detector(model: nn.Module) -> bool:
    """True for a detection model, by the one rule the Trainer and Predictor use (``is_detection_model``: a
    torchvision detector or ``task == "instance"``), so a model trains, predicts and exports down one path."""
    from segkit.inference.instances import is_detection_model

    return is_detection_model(model)


class _OneImage(nn.Module):
    """``(C, H, W)`` image -> the detector's four outputs as a tuple (ONNX graphs return tensors, not dicts)."""

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        self.detector = detector

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        detections = self.detector([image])[0]
        return tuple(detections[name] for name in INSTANCE_OUTPUTS)


def input_normalization(model: nn.Module, normalization: Any = None) -> dict[str, list[float]]:
    """What the exported graph's input expects, in raw pixel units: ``image = (pixels - mean) / std``.

    segkit's ``mask_rcnn`` leaves torchvision's internal normalisation as the identity and takes
    images normalised like its training data (``normalization``, the checkpoint's; None: ImageNet
    statistics for uint8 RGB, as in ``Predictor``). A detector that normalises inside (other
    ``image_mean``/``image_std``) takes pixels divided by their range, ``[0, 1]``: mean 0, std 255 for
    uint8 (the range of ``normalization``'s dtype otherwise), the rule ``Predictor`` follows.

    Args:
        model: the detector.
        normalization: a ``Normalization``, a checkpoint's ``{"mean", "std"[, "dtype"]}`` or None.

    Returns:
        ``{"mean": [...], "std": [...]}``, one float per channel, in the units of the image file's pixels.
    """
    from segkit.datasets.normalization import Normalization, pixel_range
    from segkit.inference.instances import normalises_inside

    norm = Normalization.coerce(normalization)
    if normalises_inside(model):
        scale = pixel_range(norm.dtype or "uint8")
        return {"mean": [0.0] * norm.channels, "std": [scale] * norm.channels}
    return {"mean": list(norm.mean), "std": list(norm.std)}


def export_instance_onnx(
    model: nn.Module,
    path: str | Path,
    input_size: Sequence[int] = (512, 512),
    opset: int = 17,
    normalization: Any = None,
    class_names: Sequence[str] | None = None,
) -> Path:
    """Export a Mask R-CNN to ONNX: one image in, its detections out, at any image size.

    Input ``image``: one image ``(C, H, W)`` float32 (C = 3 for segkit's detectors), normalised as the
    checkpoint's data normalisation says: ``(pixels - mean) / std`` per channel, with ``mean`` and
    ``std`` in raw pixel units as written in the file's metadata (``segkit.input_mean``,
    ``segkit.input_std``; see ``input_normalization``). H and W are dynamic; the graph resizes inside
    as the model does (``min_size``/``max_size``) and returns results at the input's size. One image
    per run: torchvision's detection graph does not export a batch.

    Outputs, K detections (K may be 0), sorted by score within the model's limits:
        - ``boxes`` ``(K, 4)`` float32, ``x1, y1, x2, y2`` in input pixels;
        - ``labels`` ``(K,)`` int64, class index (0 is background, never returned);
        - ``scores`` ``(K,)`` float32 in ``[0, 1]``;
        - ``masks`` ``(K, 1, H, W)`` float32 probabilities in ``[0, 1]`` (threshold at 0.5 for a mask).

    The model's ``box_score_thresh``, ``box_nms_thresh`` and ``box_detections_per_img`` are fixed in
    the graph; filter by ``scores`` afterwards (``segkit predict`` keeps >= 0.5 by default). The file's
    metadata also holds ``segkit.task`` ("instance") and ``segkit.class_names`` (a JSON list by label,
    or "null"). Uses the TorchScript-based exporter (``dynamo=False``), as torchvision's own tests do.

    Args:
        model: the detector; exported in eval mode (its train/eval state is restored afterwards).
        path: output ``.onnx`` file.
        input_size: ``(H, W)`` of the traced example image; any size runs afterwards.
        opset: ONNX opset version, 11 or later.
        normalization: the training data's normalisation (a checkpoint's ``normalization``), recorded
            in the metadata; None: ImageNet statistics for uint8 RGB.
        class_names: names by label, recorded in the metadata; None: the model's ``class_names``.

    Returns:
        The written path.

    Raises:
        ValueError: not a detector, an opset below 11 or a bad ``input_size``.

    Example:
        >>> export_instance_onnx(build_model("mask_rcnn", num_classes=4, backbone="resnet18_fpn"), "m.onnx")
    """
    if not is_detector(model):
        raise ValueError("export_instance_onnx: exports detectors (Mask R-CNN); use export_onnx for semantic models")
    if getattr(getattr(model, "roi_heads", None), "mask_predictor", None) is None:
        raise ValueError(
            f"export_instance_onnx: {type(model).__name__} is a detector without masks; segkit exports Mask "
            "R-CNN-style models (boxes, labels, scores, masks). Export it with torch.onnx.export yourself"
        )
    if opset < MIN_OPSET:
        raise ValueError(f"export_instance_onnx: Mask R-CNN needs opset {MIN_OPSET} or later, got {opset}")
    if len(input_size) != 2 or min(input_size) < 1:
        raise ValueError(
            f"export_instance_onnx: input_size must be (H, W) with positive sizes, got {tuple(input_size)}"
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    channels = len(getattr(model.transform, "image_mean", [0.0] * 3))
    was_training = model.training
    model.eval()
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    # A fixed example: the graph does not depend on its values (a trace with no detection runs fine on
    # images with many), and a seeded one keeps the export reproducible.
    example = torch.rand(channels, int(input_size[0]), int(input_size[1]), generator=torch.Generator().manual_seed(0))
    per_detection = {0: "detections"}
    axes = {
        "image": {1: "height", 2: "width"},
        **{name: per_detection for name in INSTANCE_OUTPUTS[:3]},
        "masks": {0: "detections", 2: "height", 3: "width"},
    }
    try:
        with warnings.catch_warnings():
            # torchvision's detection code converts sizes to Python numbers and warns while tracing;
            # its ONNX paths keep them symbolic (the tests run other sizes than the traced one). It
            # scripts its mask-paste loop (torch.jit.script is deprecated), and the exporter reports
            # how it lowered indexing and slicing: all expected, none actionable for the user.
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated", category=FutureWarning)
            for expected in ("To copy construct from a tensor", "Exporting aten::index", "Constant folding"):
                warnings.filterwarnings("ignore", message=expected, category=UserWarning)
            torch.onnx.export(
                _OneImage(model),
                (example.to(device),),
                str(path),
                input_names=["image"],
                output_names=list(INSTANCE_OUTPUTS),
                dynamic_axes=axes,
                opset_version=opset,
                dynamo=False,
            )
    finally:
        model.train(was_training)
    names = list(class_names) if class_names is not None else getattr(model, "class_names", None)
    norm = input_normalization(model, normalization)
    _write_metadata(
        path,
        {
            "segkit.task": "instance",
            "segkit.input_mean": json.dumps(norm["mean"]),
            "segkit.input_std": json.dumps(norm["std"]),
            "segkit.class_names": json.dumps(list(names) if names is not None else None),
        },
    )
    return path


def _write_metadata(path: Path, entries: Mapping[str, str]) -> None:
    """Add string entries to the ONNX file's metadata (what ``session.get_modelmeta()`` reads back)."""
    try:
        import onnx
    except ImportError as exc:  # torch's exporter itself needs it; say which extra brings it
        raise ImportError('ONNX export needs the onnx package: pip install "segkit[onnx]"') from exc

    proto = onnx.load(str(path))
    for key, value in entries.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(path))
