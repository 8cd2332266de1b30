"""Evaluation metrics: streaming confusion matrix (mIoU, Dice, pixel accuracy) and COCO AP (pycocotools)."""

from segkit.metrics.coco import CocoEvaluator
from segkit.metrics.confusion import ConfusionMatrix

__all__ = ["CocoEvaluator", "ConfusionMatrix"]
