"""Inference: ``Predictor`` (semantic masks or instances at the original size), sliding window, TTA."""

from segkit.inference.image_list import read_image_list
from segkit.inference.instances import Instances, is_detection_model
from segkit.inference.mask_writer import encode_mask, save_mask
from segkit.inference.onnx_predictor import OnnxPredictor
from segkit.inference.predictor import Predictor, read_image
from segkit.inference.window import sliding_window, tta_logits, window_starts, window_weights

__all__ = [
    "Instances",
    "OnnxPredictor",
    "Predictor",
    "encode_mask",
    "is_detection_model",
    "read_image",
    "read_image_list",
    "save_mask",
    "sliding_window",
    "tta_logits",
    "window_starts",
    "window_weights",
]
