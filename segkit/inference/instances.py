"""``Instances``: the detections of one image (boxes, labels, names, scores, masks) as NumPy arrays."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["Instances", "is_detection_model", "normalises_inside"]


@dataclass
class Instances:
    """Detected instances of one image, at the image's original size.

    Attributes:
        boxes: ``(K, 4)`` float32, ``x1, y1, x2, y2`` in pixels.
        labels: ``(K,)`` int64 class indices (0 = background is never returned by detectors).
        scores: ``(K,)`` float32 confidences in [0, 1].
        masks: ``(K, H, W)`` bool, or None for a box-only detector.
        names: ``K`` class names (``str(label)`` when the model has no names).
        image_size: ``(H, W)``.
    """

    boxes: np.ndarray
    labels: np.ndarray
    scores: np.ndarray
    masks: np.ndarray | None
    names: list[str] = field(default_factory=list)
    image_size: tuple[int, int] = (0, 0)

    def __len__(self) -> int:
        return int(len(self.scores))

    def filter(self, min_confidence: float = 0.0, classes: Sequence[str | int] | None = None) -> Instances:
        """Keep instances with ``score >= min_confidence`` and, if given, a label or name in ``classes``."""
        keep = self.scores >= min_confidence
        if classes is not None:
            wanted = {str(c) for c in classes}
            keep &= np.array([str(lb) in wanted or nm in wanted for lb, nm in zip(self.labels, self.names)], dtype=bool)
        return self.select(keep)

    def select(self, keep: np.ndarray) -> Instances:
        """Return the instances picked by a boolean mask or an index array."""
        idx = np.flatnonzero(keep) if np.asarray(keep).dtype == bool else np.asarray(keep, dtype=np.int64)
        return Instances(
            boxes=self.boxes[idx],
            labels=self.labels[idx],
            scores=self.scores[idx],
            masks=None if self.masks is None else self.masks[idx],
            names=[self.names[i] for i in idx],
            image_size=self.image_size,
        )

    def to_label_map(self) -> np.ndarray:
        """Class-index map ``(H, W)`` uint8: each pixel gets the label of its most confident instance (0 elsewhere)."""
        out = np.zeros(self.image_size, dtype=np.uint8)
        if self.masks is None or len(self) == 0:
            return out
        # Paint the least confident first so the most confident instance ends on top.
        for i in np.argsort(self.scores, kind="stable"):
            out[self.masks[i]] = np.uint8(self.labels[i])
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no masks): boxes, labels, names and scores as lists."""
        return {
            "boxes": self.boxes.round(2).tolist(),
            "labels": self.labels.tolist(),
            "names": list(self.names),
            "scores": self.scores.round(4).tolist(),
        }

    @classmethod
    def from_torchvision(
        cls,
        output: Mapping[str, torch.Tensor],
        image_size: tuple[int, int],
        class_names: Sequence[str] | None = None,
        mask_threshold: float = 0.5,
    ) -> Instances:
        """Convert one torchvision detection output dict (``boxes``, ``labels``, ``scores``, ``masks``).

        Args:
            output: a dict of the list returned by a torchvision detector in eval mode.
            image_size: ``(H, W)`` of the image.
            class_names: names indexed by label.
            mask_threshold: soft masks ``(K, 1, H, W)`` are binarised at this probability.
        """
        boxes = output["boxes"].detach().float().cpu().numpy().reshape(-1, 4)
        labels = output["labels"].detach().cpu().numpy().astype(np.int64)
        scores = output["scores"].detach().float().cpu().numpy()
        masks = None
        if "masks" in output:
            m = output["masks"].detach()
            m = m[:, 0] if m.dim() == 4 else m
            masks = (m > mask_threshold).cpu().numpy() if m.is_floating_point() else m.bool().cpu().numpy()
        names = [_name(class_names, int(lb)) for lb in labels]
        return cls(boxes, labels, scores.astype(np.float32), masks, names, (int(image_size[0]), int(image_size[1])))


def _name(class_names: Sequence[str] | None, label: int) -> str:
    if class_names is not None and 0 <= label < len(class_names):
        return str(class_names[label])
    return str(label)


def is_detection_model(model: nn.Module) -> bool:
    """True for torchvision detectors (Mask R-CNN, Faster R-CNN, RetinaNet, ...) or a model with ``task == "instance"``."""
    if getattr(model, "task", None) == "instance":
        return True
    from torchvision.models.detection.transform import GeneralizedRCNNTransform

    return isinstance(getattr(model, "transform", None), GeneralizedRCNNTransform)


def normalises_inside(model: nn.Module) -> bool:
    """True when a torchvision detector's own transform normalises (its mean/std are not the identity)."""
    transform = getattr(model, "transform", None)
    mean, std = getattr(transform, "image_mean", None), getattr(transform, "image_std", None)
    if mean is None or std is None:
        return True
    return any(float(m) != 0.0 for m in mean) or any(float(s) != 1.0 for s in std)
