"""Inference: ``Predictor`` (semantic masks or instances at the original size), sliding window, TTA."""

from segkit.inference.instances import Instances, is_detection_model
from segkit.inference.predictor import Predictor, read_image
from segkit.inference.window import sliding_window, tta_logits, window_starts, window_weights

__all__ = [
    "Instances",
    "Predictor",
    "is_detection_model",
    "read_image",
    "sliding_window",
    "tta_logits",
    "window_starts",
    "window_weights",
]
