"""``OnnxPredictor``: a semantic ONNX file from ``segkit export`` run with onnxruntime, prepared as ``Predictor`` does."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from segkit.datasets.decoding import read_image
from segkit.datasets.normalization import Normalization
from segkit.inference.window import windowed_logits

__all__ = ["OnnxPredictor", "read_metadata"]


def read_metadata(session: Any, path: str | Path) -> dict[str, Any]:
    """The ``segkit.*`` entries of an ONNX file's metadata, JSON-decoded, keys without the prefix.

    Raises:
        ValueError: the file holds no segkit metadata (not written by ``segkit export``, or before it kept any).
    """
    raw = session.get_modelmeta().custom_metadata_map
    meta = {k.removeprefix("segkit."): json.loads(v) for k, v in raw.items() if k.startswith("segkit.")}
    if "task" not in meta:
        raise ValueError(
            f"{path}: no segkit metadata in the file (segkit.task); export it again with this segkit "
            f"(segkit export --checkpoint best.pt --out model.onnx)"
        )
    return meta


class OnnxPredictor:
    """Predict class-index masks with an exported semantic ONNX file: the same reading, normalisation
    (the file's ``segkit.input_mean`` / ``input_std`` / ``input_dtype``), window and TTA as ``Predictor``.

    Args:
        path: the ``.onnx`` file written by ``segkit export`` (semantic model).
        window, overlap, weighting, tta, flips, scales, batch_size: as in ``Predictor``.
        providers: onnxruntime execution providers (default: CPU).

    Attributes:
        class_names, palette, normalization, mask_format: read from the file's metadata.
        input_size: the ``(H, W)`` training images were resized to (images are resized to it and the logits
            back, as ``Predictor`` does), or None.
        graph_size: the one ``(H, W)`` a fixed-size graph takes, or None (any size).

    Raises:
        ImportError: onnxruntime is not installed.
        ValueError: the file holds an instance model, or no segkit metadata.

    Example:
        >>> mask = OnnxPredictor("model.onnx").predict("photo.png")   # (H, W) int64
    """

    task = "semantic"

    def __init__(
        self,
        path: str | Path,
        *,
        window: int | tuple[int, int] | None = None,
        overlap: float = 0.25,
        weighting: str = "gaussian",
        tta: bool = False,
        flips: tuple[str, ...] = ("h",),
        scales: tuple[float, ...] = (1.0,),
        batch_size: int = 4,
        providers: list[str] | None = None,
    ) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise ImportError('running an ONNX file needs onnxruntime: pip install "segkit[onnx]"') from exc
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"ONNX file not found: {self.path}")
        self.session = ort.InferenceSession(str(self.path), providers=providers or ["CPUExecutionProvider"])
        meta = read_metadata(self.session, self.path)
        if meta["task"] != "semantic":
            raise ValueError(
                f"{self.path}: a {meta['task']} model; OnnxPredictor runs semantic files (the instance file's "
                f"script is in docs/deploy.md)"
            )
        self.metadata = meta
        self.normalization = Normalization(meta["input_mean"], meta["input_std"], meta.get("input_dtype"))
        self.class_names = meta.get("class_names")
        palette = meta.get("palette")
        self.palette = None if palette is None else np.asarray(palette, np.uint8)
        self.mask_format = meta.get("mask_format")
        self.input_size = None if meta.get("input_size") is None else tuple(meta["input_size"])
        self.graph_size = None if meta.get("graph_size") is None else tuple(meta["graph_size"])
        self.window, self.overlap, self.weighting = window, float(overlap), weighting
        self.tta, self.flips, self.scales = bool(tta), tuple(flips), tuple(scales)
        self.batch_size = max(1, int(batch_size))

    def predict(self, image: str | Path | np.ndarray) -> np.ndarray:
        """Predict one image (a file path, or an ``(H, W, C)`` array like the training images).

        Returns:
            ``(H, W)`` int64 class indices at the image's size.

        Raises:
            ValueError: the image's channels or pixel type differ from the training images', or a fixed-size
                file (``input_size``) is given an image of another size without a window of that size.
        """
        array = read_image(image) if isinstance(image, (str, Path)) else image
        pixels = self.normalization.check_image(array)
        size = pixels.shape[:2]
        if self.input_size is not None:  # as the training data was resized (Predictor._predict_resized)
            import cv2

            h, w = self.input_size
            shrink = h <= size[0] and w <= size[1]
            resized = cv2.resize(pixels, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
            pixels = resized.reshape(h, w, *pixels.shape[2:])
        x = torch.from_numpy(self.normalization.apply(pixels)).permute(2, 0, 1)[None]
        logits = self.predict_logits(x)
        if logits.shape[-2:] != size:
            logits = F.interpolate(logits.float(), size=size, mode="bilinear", align_corners=False)
        return logits.argmax(1)[0].numpy()

    def predict_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, K, H, W)`` for normalised images ``(N, C, H, W)``, with the window and TTA when set."""
        return windowed_logits(self._forward, x, self)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.graph_size is not None and tuple(x.shape[-2:]) != self.graph_size:
            h, w = self.graph_size
            raise ValueError(
                f"{self.path}: the graph takes {h}x{w} images only (its model pools into bins fixed at export), "
                f"got {x.shape[-2]}x{x.shape[-1]}; pass --window {h} for images at least that large, or export "
                f"at your images' size (segkit export --size H W)"
            )
        logits = self.session.run(["logits"], {"image": np.ascontiguousarray(x.numpy(), dtype=np.float32)})[0]
        return torch.from_numpy(logits)
