"""``Predictor``: load a checkpoint and turn images (paths, arrays, tensors) into masks or instances."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from segkit.checkpoint import load_checkpoint
from segkit.datasets.decoding import read_image
from segkit.datasets.normalization import Normalization, pixel_range
from segkit.inference.instances import Instances, is_detection_model, normalises_inside
from segkit.inference.window import windowed_logits

__all__ = ["Predictor", "read_image"]

ImageLike = str | Path | np.ndarray | torch.Tensor


class Predictor:
    """Run a segmentation model on images of any size and return results at the original size.

    Semantic models (logits ``(N, C, H, W)``) give class-index masks; torchvision detectors
    (Mask R-CNN, Faster R-CNN, ... in eval mode) or models with ``task = "instance"`` give
    ``Instances`` (boxes, labels, names, scores, masks) filtered by ``min_confidence``.

    Args:
        model: the network.
        class_names: names per class index (default: ``model.class_names`` if present).
        palette: ``(C, 3)`` uint8 colours.
        device: "auto", "cpu", "cuda", ...
        normalization: the training images' statistics, a ``Normalization`` or ``{"mean", "std"[,
            "dtype"]}`` in raw pixel units (what checkpoints store; ``from_checkpoint`` reads it);
            None: ImageNet for uint8 RGB. New images must have its channel count (and pixel type).
            Detectors: applied when the model's own transform does not normalise (segkit's
            ``mask_rcnn``); a plain torchvision detector gets ``[0, 1]`` images and normalises inside.
        window: sliding-window side (or ``(h, w)``) for large images; None = whole image at once.
        overlap: fraction shared by neighbouring windows, in [0, 1).
        weighting: "gaussian" or "uniform" blending of overlapping window logits.
        tta: average the logits over flips and ``scales`` (semantic models).
        flips: flips used by TTA: "h" (left-right), "v" (up-down).
        scales: resize factors used by TTA.
        min_confidence: instances scoring below are dropped.
        input_size: ``(H, W)`` the training images were resized to (a folder dataset's ``image_size``; the
            checkpoint records it): semantic models then see each image resized to it (area when shrinking,
            bilinear otherwise, as the dataset did) and their logits are resized back to the image's size.
            None: each image at its own size.
        batch_size: images (or windows) per forward pass.

    Example:
        >>> predictor = Predictor.from_checkpoint("runs/shapes_unet/best.pt", window=512, tta=True)
        >>> mask = predictor.predict("photo.jpg")            # (H, W) int64
    """

    def __init__(
        self,
        model: nn.Module,
        class_names: Sequence[str] | None = None,
        palette: np.ndarray | Sequence[Sequence[int]] | None = None,
        device: str | torch.device = "auto",
        normalization: Normalization | Mapping[str, Any] | None = None,
        *,
        window: int | Sequence[int] | None = None,
        overlap: float = 0.25,
        weighting: str = "gaussian",
        tta: bool = False,
        flips: Sequence[str] = ("h",),
        scales: Sequence[float] = (1.0,),
        min_confidence: float = 0.5,
        batch_size: int = 4,
        input_size: Sequence[int] | None = None,
    ) -> None:
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if not 0.0 <= overlap < 1.0:
            raise ValueError(f"overlap: expected a fraction in [0, 1), got {overlap}")
        if weighting not in ("gaussian", "uniform"):
            raise ValueError(f"weighting: expected 'gaussian' or 'uniform', got {weighting!r}")
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.task = "instance" if is_detection_model(model) else "semantic"
        names = class_names if class_names is not None else getattr(model, "class_names", None)
        self.class_names = list(names) if names is not None else None
        self.palette = None if palette is None else np.asarray(palette, dtype=np.uint8)
        self.normalization = Normalization.coerce(normalization)
        self.window = window
        self.overlap = float(overlap)
        self.weighting = weighting
        self.tta = bool(tta)
        self.flips = tuple(flips)
        self.scales = tuple(float(s) for s in scales)
        self.min_confidence = float(min_confidence)
        self.batch_size = max(1, int(batch_size))
        self.input_size = None if input_size is None else (int(input_size[0]), int(input_size[1]))
        # How the training masks were stored (see segkit.inference.mask_writer); from_checkpoint sets it.
        self.mask_format: dict[str, Any] | None = None

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | torch.device = "auto", **kwargs: Any) -> Predictor:
        """Rebuild the model saved by the Trainer (the checkpoint describes it) and load its weights.

        Args:
            path: a checkpoint written by the Trainer (``best.pt`` / ``last.pt``).
            device: where to run.
            **kwargs: other ``Predictor`` options (``window``, ``tta``, ``min_confidence``, ...).

        The model is named by the checkpoint's config, or else by the ``model_config`` that
        ``build_model`` recorded (a Trainer built in Python without a config); pretrained-weight options
        (``encoder_weights``, ``weights``) are dropped, so nothing is downloaded (see
        ``segkit.models.from_checkpoint.model_from_checkpoint``). New images are normalised with the checkpoint's
        ``normalization`` (checkpoints written before segkit stored it have none: ImageNet statistics
        for uint8 RGB, what their training used).

        Raises:
            CheckpointError: unreadable file, no model description inside (a model not made by
                ``build_model``), or weights that do not fit.
        """
        from segkit.models.from_checkpoint import model_from_checkpoint

        ckpt = load_checkpoint(path)
        model = model_from_checkpoint(path, ckpt)
        kwargs.setdefault("normalization", ckpt.get("normalization"))
        kwargs.setdefault("input_size", ckpt.get("input_size"))
        predictor = cls(model, ckpt.get("class_names"), ckpt.get("palette"), device=device, **kwargs)
        predictor.mask_format = ckpt.get("mask_format")  # how the training masks were stored (segkit predict)
        return predictor

    # ----------------------------------------------------------------- public API
    @torch.no_grad()
    def predict(
        self,
        image: ImageLike | Sequence[ImageLike],
        *,
        min_confidence: float | None = None,
        classes: Sequence[str | int] | None = None,
    ) -> Any:
        """Predict one image or a batch.

        Args:
            image: a file path (multi-band TIFFs too, see ``read_image``); an ``(H, W, C)`` array with
                the training images' channels and pixel type (uint8 RGB by default); an ``(N, H, W, C)``
                array; a list of paths/arrays (sizes may differ); or a float tensor ``(N, C, H, W)`` /
                ``(C, H, W)`` passed to the model as is, so normalised like the training data (a plain
                torchvision detector: RGB in [0, 1]).
            min_confidence: instances only; overrides the predictor's threshold for this call.
            classes: instances only; keep only these labels or names.

        Returns:
            Semantic: ``(H, W)`` int64 array per image (a list for a list, ``(N, H, W)`` for a 4-D array,
            an int64 tensor for a tensor). Instance: ``Instances`` per image (a list for a batch).

        Shape:
            Outputs always have the input's height and width.
        """
        if self.task == "instance":
            return self._predict_instances(image, min_confidence, classes)
        if isinstance(image, torch.Tensor):
            x = image[None] if image.dim() == 3 else image
            pred = self.predict_logits(x.to(self.device)).argmax(1)
            return pred[0] if image.dim() == 3 else pred
        if isinstance(image, (str, Path)):
            image = read_image(image)
        if isinstance(image, np.ndarray) and image.ndim == 4:
            return np.stack(self._predict_arrays(list(image)))
        if isinstance(image, (list, tuple)):
            arrays = [read_image(p) if isinstance(p, (str, Path)) else p for p in image]
            return self._predict_arrays(arrays)
        return self._predict_arrays([image])[0]

    def predict_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, K, H, W)`` at the input size for normalised images ``(N, C, H, W)``.

        Applies the sliding window (``window``) and test-time augmentation (``tta``) when set.
        """
        if self.task == "instance":
            raise ValueError("predict_logits: this predictor runs an instance model; use predict()")
        return windowed_logits(self._forward, x, self)

    def preprocess(self, image: np.ndarray) -> torch.Tensor:
        """``(H, W, C)`` image -> ``(1, C, H, W)`` float32 on the device, ``(x - mean) / std`` with ``normalization``.

        Raises:
            ValueError: the image's channels or pixel type differ from the training images'.
        """
        x = self.normalization.apply(self.normalization.check_image(image, "preprocess"))
        return torch.from_numpy(x).permute(2, 0, 1)[None].to(self.device)

    def __call__(self, image: Any, **kwargs: Any) -> Any:
        return self.predict(image, **kwargs)

    # ----------------------------------------------------------------- internals
    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        if isinstance(out, dict):  # torchvision segmentation models: {"out": ..., "aux": ...}
            out = out["out"]
        elif isinstance(out, (tuple, list)):  # aux heads / edge streams: the logits come first
            out = out[0]
        if out.shape[-2:] != x.shape[-2:]:
            out = F.interpolate(out.float(), size=x.shape[-2:], mode="bilinear", align_corners=False)
        return out

    def _predict_arrays(self, arrays: list[Any]) -> list[np.ndarray]:
        rgb = [self.normalization.check_image(a) for a in arrays]
        if self.input_size is not None:
            return [self._predict_resized(a) for a in rgb]
        results: list[np.ndarray | None] = [None] * len(rgb)
        # Same-sized images share forward passes; the others go one by one.
        by_size: dict[tuple[int, int], list[int]] = {}
        for i, a in enumerate(rgb):
            by_size.setdefault((a.shape[0], a.shape[1]), []).append(i)
        for idx in by_size.values():
            for j in range(0, len(idx), self.batch_size):
                chunk = idx[j : j + self.batch_size]
                x = torch.cat([self.preprocess(rgb[k]) for k in chunk])
                pred = self.predict_logits(x).argmax(1).cpu().numpy()
                for k, p in zip(chunk, pred):
                    results[k] = p
        return [r for r in results if r is not None]

    def _predict_resized(self, image: np.ndarray) -> np.ndarray:
        """One image seen at ``input_size``, as in training; its logits resized back to the image's size."""
        import cv2

        assert self.input_size is not None
        (h, w), size = self.input_size, image.shape[:2]
        shrink = h <= size[0] and w <= size[1]
        small = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        logits = self.predict_logits(self.preprocess(small.reshape(h, w, *image.shape[2:])))
        if logits.shape[-2:] != size:
            logits = F.interpolate(logits.float(), size=size, mode="bilinear", align_corners=False)
        return logits.argmax(1)[0].cpu().numpy()

    def _predict_instances(
        self, image: Any, min_confidence: float | None, classes: Sequence[str | int] | None
    ) -> Instances | list[Instances]:
        if self.tta or self.window is not None:
            raise ValueError("tta and window apply to semantic models; this predictor runs an instance model")
        threshold = self.min_confidence if min_confidence is None else float(min_confidence)
        single = isinstance(image, (str, Path)) or (isinstance(image, (np.ndarray, torch.Tensor)) and image.ndim == 3)
        if isinstance(image, torch.Tensor):
            batch = [image] if image.dim() == 3 else list(image)
            tensors = [t.float().to(self.device) for t in batch]
        else:
            items: list[Any] = [image] if single else list(image)
            arrays = [self.normalization.check_image(read_image(p) if isinstance(p, (str, Path)) else p) for p in items]
            # segkit's Mask R-CNN takes images normalised like its training data; a plain torchvision
            # detector normalises [0, 1] images itself.
            if normalises_inside(self.model):
                unit = [torch.tensor(a, dtype=torch.float32).permute(2, 0, 1).div(pixel_range(a.dtype)) for a in arrays]
            else:
                unit = [torch.from_numpy(self.normalization.apply(a)).permute(2, 0, 1) for a in arrays]
            tensors = [t.to(self.device) for t in unit]
        out: list[Instances] = []
        for j in range(0, len(tensors), self.batch_size):
            chunk = tensors[j : j + self.batch_size]
            for t, det in zip(chunk, self.model(chunk)):
                inst = Instances.from_torchvision(det, (t.shape[-2], t.shape[-1]), self.class_names)
                out.append(inst.filter(threshold, classes))
        return out[0] if single else out
