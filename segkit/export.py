"""ONNX export of semantic segmentation models (``segkit export``); detectors go to ``export_instance``."""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from segkit.export_instance import export_instance_onnx, is_detector
from segkit.models.from_checkpoint import model_from_checkpoint

logger = logging.getLogger(__name__)

__all__ = ["export_onnx", "model_from_checkpoint"]


def export_onnx(
    model: nn.Module,
    path: str | Path,
    input_size: Sequence[int] = (512, 512),
    in_channels: int | None = None,
    opset: int = 17,
    dynamic_batch: bool = True,
    *,
    dynamic_size: bool = True,
    normalization: Any = None,
    class_names: Sequence[str] | None = None,
    palette: Any = None,
    ignore_index: int = 255,
    mask_format: Mapping[str, Any] | None = None,
    input_size_resize: Sequence[int] | None = None,
) -> Path:
    """Export a model to ONNX: semantic input ``image`` ``(N, C, H, W)``, output ``logits`` ``(N, K, H, W)``.

    A detector (Mask R-CNN) is exported by ``segkit.export_instance.export_instance_onnx`` instead (one
    image ``(3, H, W)`` of any size in; ``boxes``, ``labels``, ``scores``, ``masks`` out; ``input_size`` is
    only the traced example's size, ``in_channels`` and ``dynamic_batch`` do not apply); call that to
    record the checkpoint's normalisation and class names in the file.

    Semantic graphs take images of any height and width (``dynamic_size``): the graph pads to the model's
    stride multiple (reflect at the bottom/right, as ``PadToMultiple`` does in PyTorch), runs the model,
    crops the logits back and resizes logits of a lower resolution to the input's, so its logits are
    ``Predictor``'s. The export is checked with onnxruntime at a second size; a model whose graph holds
    sizes fixed at export (pyramid pooling into fixed bins: PSPNet, UPerNet) is exported
    at ``input_size`` only, with a warning, and the file says so (``segkit.graph_size``). The file's
    metadata (``session.get_modelmeta().custom_metadata_map``, JSON values) holds what a deployer needs:
    ``segkit.task`` ("semantic"), ``segkit.input_mean`` / ``segkit.input_std`` (raw pixel units:
    ``image = (pixels - mean) / std``), ``segkit.input_dtype`` (the training pixels' type, which scales
    them: see ``Normalization.apply``), ``segkit.in_channels``, ``segkit.num_classes``,
    ``segkit.class_names``, ``segkit.palette``, ``segkit.ignore_index``, ``segkit.mask_format`` (how the
    training masks were stored, or null), ``segkit.input_size`` (the ``(H, W)`` the training images were
    resized to, which new images are resized to before the graph and the logits resized back from, as
    ``Predictor`` does; null: none) and ``segkit.graph_size`` (null: any size). Uses the
    TorchScript-based exporter (``dynamo=False``): it needs no onnxscript.

    Args:
        model: the model; exported in eval mode (its train/eval state is restored afterwards).
        path: output ``.onnx`` file.
        input_size: ``(H, W)`` of the traced input (the only size of a fixed-size graph).
        in_channels: image channels; None: ``normalization``'s (3 without one).
        opset: ONNX opset version.
        dynamic_batch: keep the batch dimension symbolic.
        dynamic_size: keep H and W symbolic (False: the graph takes ``input_size`` only).
        normalization: the training images' ``Normalization`` (a checkpoint's ``normalization``); None:
            ImageNet statistics for uint8 RGB, as ``Predictor`` uses.
        class_names: names by class index (None: the model's ``class_names``, if any).
        palette: ``(K, 3)`` uint8 colours by class index, or None.
        ignore_index: the label value of ignored pixels in the training masks.
        mask_format: how the training masks were stored (a checkpoint's ``mask_format``), or None.
        input_size_resize: the checkpoint's ``input_size`` (a folder dataset's ``image_size`` resize), or None.

    Returns:
        The written path.

    Raises:
        ValueError: an ``input_size`` that cannot be exported (pyramid pooling whose bins do not divide
            the map), ``in_channels`` other than the normalisation's, or a detector with an opset below 11.

    Example:
        >>> export_onnx(build_model("unet", num_classes=3, encoder="resnet18"), "unet.onnx", (256, 256))
    """
    from segkit.datasets.normalization import Normalization

    if len(input_size) != 2 or min(input_size) < 1:
        raise ValueError(f"export_onnx: input_size must be (H, W) with positive sizes, got {tuple(input_size)}")
    if is_detector(model):
        return export_instance_onnx(model, path, input_size, opset=opset)
    norm = Normalization.coerce(normalization)
    channels = norm.channels if in_channels is None else int(in_channels)
    if channels != norm.channels:
        raise ValueError(
            f"export_onnx: in_channels={channels} but the normalisation has {norm.channels} channels; give the "
            f"training data's normalization"
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    model.eval()
    size = (int(input_size[0]), int(input_size[1]))
    try:
        fixed = not dynamic_size
        if dynamic_size:
            try:
                # eval() on the wrapper: the exporter restores the wrapper's mode onto the whole model.
                any_size = _Deployable(model).eval()
                _trace(any_size, path, size, channels, opset, dynamic_batch, dynamic_size=True)
                fixed = not _same_at_another_size(any_size.eval(), path, size, channels)
            except torch.onnx.errors.SymbolicValueError as exc:
                if "adaptive_avg_pool2d" not in str(exc):
                    raise
                fixed = True
            if fixed:
                logger.warning(
                    "export_onnx: %s keeps sizes fixed at export (pooling into fixed bins), so its graph cannot "
                    "take any size; exported for %dx%d inputs only (segkit.graph_size in the metadata)",
                    (getattr(model, "model_config", None) or {}).get("name", type(model).__name__),
                    *size,
                )
        graph = _Deployable(model, any_size=not fixed).eval()
        if fixed:
            _trace(graph, path, size, channels, opset, dynamic_batch, dynamic_size=False)
        with torch.no_grad():
            num_classes = int(graph.eval()(_example(size, channels, graph)).shape[1])
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
    names = list(class_names) if class_names is not None else getattr(model, "class_names", None)
    colours = None if palette is None else np.asarray(palette).astype(int).reshape(-1, 3).tolist()
    metadata = {
        "segkit.task": "semantic",
        "segkit.input_mean": list(norm.mean),
        "segkit.input_std": list(norm.std),
        "segkit.input_dtype": norm.dtype,
        "segkit.in_channels": channels,
        "segkit.num_classes": num_classes,
        "segkit.class_names": None if names is None else [str(n) for n in names],
        "segkit.palette": colours,
        "segkit.ignore_index": int(ignore_index),
        "segkit.mask_format": None if mask_format is None else dict(mask_format),
        "segkit.input_size": None if input_size_resize is None else [int(v) for v in input_size_resize],
        "segkit.graph_size": list(size) if fixed else None,
    }
    _finish_file(path, {k: json.dumps(v) for k, v in metadata.items()}, num_classes)
    return path


class _Deployable(nn.Module):
    """What ``Predictor`` computes around a semantic model, as traceable tensor operations.

    Pads ``(N, C, H, W)`` images to the model's stride multiple as ``PadToMultiple`` does (reflect at the
    bottom/right; replicate when a side is too short to reflect), so the model's own padding sees a
    multiple and does nothing; keeps the logits of a model returning several outputs; crops them back
    to ``H x W`` and resizes logits of a lower resolution (``Predictor._forward``). The sizes are
    tensors (``_shape_as_tensor``), so the exported graph computes them for each input.
    """

    def __init__(self, model: nn.Module, any_size: bool = True) -> None:
        super().__init__()
        self.model = model
        # A fixed-size graph leaves the padding to the model: constant sizes keep every shape known to
        # the exporter (pyramid pooling needs them).
        self.multiple = _stride_multiple(model) if any_size else 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = torch._shape_as_tensor(x)
        h, w = shape[2], shape[3]
        padded = x
        if self.multiple > 1:
            m = self.multiple
            ph, pw = (m - h % m) % m, (m - w % m) % m
            reflect = (ph < h) & (pw < w)
            padded = x.index_select(2, _pad_index(h, ph, reflect)).index_select(3, _pad_index(w, pw, reflect))
        out = self.model(padded)
        if isinstance(out, dict):  # torchvision segmentation models: {"out": ..., "aux": ...}
            out = out["out"]
        elif isinstance(out, (tuple, list)):  # aux heads / edge streams: the logits come first
            out = out[0]
        if out.shape[-2:] == padded.shape[-2:]:
            if self.multiple > 1:
                # arange of a size tensor: the exported graph computes the crop for each input (mypy wants ints).
                rows, cols = torch.arange(h), torch.arange(w)  # type: ignore[call-overload]
                out = out.index_select(2, rows).index_select(3, cols)
            return out
        return F.interpolate(out.float(), size=x.shape[-2:], mode="bilinear", align_corners=False)


def _pad_index(n: torch.Tensor, pad: torch.Tensor, reflect: torch.Tensor) -> torch.Tensor:
    """Source row of each of the ``n + pad`` rows after padding at the end: reflected or replicated.

    ``n`` and ``pad`` are size tensors, so the exported graph computes the rows for each input.
    """
    rows = torch.arange(n + pad)  # type: ignore[call-overload]
    mirrored = torch.where(rows < n, rows, 2 * (n - 1) - rows).clamp(min=0)
    return torch.where(reflect, mirrored, rows.clamp(max=n - 1))


def _stride_multiple(model: nn.Module) -> int:
    """The ``multiple`` of the outermost ``PadToMultiple`` in ``model`` (1: the model takes any size as is)."""
    from segkit.models._utils import PadToMultiple

    return next((int(m.multiple) for m in model.modules() if isinstance(m, PadToMultiple)), 1)


def _example(size: tuple[int, int], channels: int, graph: nn.Module, seed: int = 0) -> torch.Tensor:
    device = next((p.device for p in graph.parameters()), torch.device("cpu"))
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(1, channels, size[0], size[1], generator=generator).to(device)


def _trace(
    graph: nn.Module,
    path: Path,
    size: tuple[int, int],
    channels: int,
    opset: int,
    dynamic_batch: bool,
    dynamic_size: bool,
) -> None:
    axes: dict[str, dict[int, str]] = {"image": {}, "logits": {}}
    for name in axes:
        if dynamic_batch:
            axes[name][0] = "batch"
        if dynamic_size:
            axes[name].update({2: "height", 3: "width"})
    with warnings.catch_warnings():
        # Size arithmetic of the models' own padding is constant once the graph pads: expected.
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        torch.onnx.export(
            graph,
            (_example(size, channels, graph),),
            str(path),
            input_names=["image"],
            output_names=["logits"],
            dynamic_axes={k: v for k, v in axes.items() if v} or None,
            opset_version=opset,
            dynamo=False,
        )


def _finish_file(path: Path, entries: Mapping[str, str], num_classes: int) -> None:
    """Add the metadata entries and write the class axis of ``logits`` as its size (the crop leaves it unnamed)."""
    try:
        import onnx
    except ImportError as exc:  # torch's exporter itself needs it; say which extra brings it
        raise ImportError('ONNX export needs the onnx package: pip install "segkit[onnx]"') from exc

    proto = onnx.load(str(path))
    for output in proto.graph.output:
        dims = output.type.tensor_type.shape.dim
        if output.name == "logits" and len(dims) == 4:
            dims[1].ClearField("dim_param")
            dims[1].dim_value = num_classes
    for key, value in entries.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(path))


def _same_at_another_size(graph: nn.Module, path: Path, size: tuple[int, int], channels: int) -> bool:
    """True when onnxruntime reproduces PyTorch at a size other than the traced one (or cannot be asked).

    Some graphs keep sizes fixed at export without any error (a pooling kernel computed from the traced
    size): their logits at another size would be silently wrong, so each export is checked once.
    """
    try:
        import onnxruntime as ort
    except ImportError:  # nothing to check with: the graph is taken as exported
        logger.warning("export_onnx: onnxruntime is not installed; the graph was not checked at other sizes")
        return True
    other = (size[0] + 37, size[1] + 19)  # odd sides: the padding is exercised
    x = _example(other, channels, graph, seed=1)
    with torch.no_grad():
        expected = graph(x).float().cpu().numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    try:
        got = session.run(["logits"], {"image": x.cpu().numpy()})[0]
    except Exception:  # noqa: BLE001 (onnxruntime's errors have no common base class)
        return False
    scale = max(float(np.abs(expected).max()), 1.0)
    return got.shape == expected.shape and float(np.abs(got - expected).max()) <= 1e-3 * scale
