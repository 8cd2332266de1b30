"""Evaluation metrics: streaming confusion matrix (mIoU, Dice, pixel accuracy)."""

from segkit.metrics.confusion import ConfusionMatrix

__all__ = ["ConfusionMatrix"]
