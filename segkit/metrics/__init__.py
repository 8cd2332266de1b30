"""Evaluation metrics: streaming confusion matrix (mIoU, Dice, pixel accuracy) and COCO AP (pycocotools)."""

from segkit.metrics.coco import CocoEvaluator
from segkit.metrics.confusion import ConfusionMatrix
from segkit.metrics.evaluate import build_evaluator, evaluate, predict_classes

__all__ = ["CocoEvaluator", "ConfusionMatrix", "build_evaluator", "evaluate", "predict_classes"]
