"""``evaluate(model, loader, ...)``: score a model on a data loader, reduced over processes (torchvision references'
habit). ``Trainer.validate``, ``segkit evaluate`` and the run report all score through it."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from segkit.datasets.base import predict_unpadded, to_device
from segkit.metrics.coco import CocoEvaluator
from segkit.metrics.confusion import ConfusionMatrix

__all__ = ["build_evaluator", "evaluate", "predict_classes"]


def build_evaluator(
    task: str,
    num_classes: int,
    ignore_index: int = 255,
    class_names: Sequence[str] | None = None,
    device: torch.device | str | None = None,
) -> ConfusionMatrix | CocoEvaluator:
    """A ``ConfusionMatrix`` (semantic) or ``CocoEvaluator`` (instance) for ``num_classes`` classes."""
    if task == "instance":
        return CocoEvaluator(num_classes, class_names)
    return ConfusionMatrix(num_classes, ignore_index, device=device, class_names=class_names)


def predict_classes(model: nn.Module, batch: Mapping[str, Any]) -> torch.Tensor:
    """The default semantic prediction: argmax of the model's logits ``(N, H, W)`` int64.

    A model returning a tuple or list (aux heads) gives its first element; a batch padded to one size
    (``batch["padded"]``) is predicted image by image at each image's own size, so the prediction does not
    depend on the padding."""
    if batch.get("padded"):
        return predict_unpadded(lambda images: predict_classes(model, {"image": images}), dict(batch))
    out = model(batch["image"])
    logits = out[0] if isinstance(out, (tuple, list)) else out
    return logits.argmax(1)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Any,
    *,
    num_classes: int,
    task: str = "semantic",
    ignore_index: int = 255,
    class_names: Sequence[str] | None = None,
    device: torch.device | str = "cpu",
    predict: Callable[[dict[str, Any]], Any] | None = None,
    prepare: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    on_batch: Callable[[dict[str, Any]], None] | None = None,
    on_prediction: Callable[[dict[str, Any], Any], None] | None = None,
) -> tuple[dict[str, Any], ConfusionMatrix | CocoEvaluator]:
    """Score ``model`` on every batch of ``loader``; under ``torchrun`` the counts of every process are summed once.

    Args:
        model: the network; put in eval mode here and given back in the mode it had.
        loader: yields collated batches (``segkit.datasets.collate_semantic`` / ``collate_instances``): ``image``
            ``(N, C, H, W)`` float, ``mask`` ``(N, H, W)`` int64 (semantic) or ``target`` dicts (instance).
        num_classes: classes of the metric.
        task: "semantic" (confusion matrix: mIoU, Dice, accuracies) or "instance" (COCO AP).
        ignore_index: mask value not counted.
        class_names: for the table.
        device: where the batches and the matrix go.
        predict: ``batch -> prediction`` (semantic: ``(N, H, W)`` class map; instance: the detector's list of
            dicts); default ``predict_classes`` (semantic) or ``model(images)`` (instance).
        prepare: ``batch -> batch`` on the device; default: its tensors moved to ``device``.
        on_batch: called with each batch before it is prepared (the Trainer notes padding there).
        on_prediction: called with each prepared batch and its prediction (the report keeps its worst images).

    Returns:
        ``(metrics, evaluator)``: ``ConfusionMatrix.compute()`` (``miou``, ``iou`` list, ...) or
        ``CocoEvaluator.compute()`` (``bbox_ap``, ``segm_ap``, ...), and the evaluator (its ``table()``, its
        matrix), both identical on every process.
    """
    evaluator = build_evaluator(task, num_classes, ignore_index, class_names, device)
    prepare = prepare or (lambda batch: to_device(batch, device))
    if predict is None:
        predict = (lambda batch: model(batch["image"])) if task == "instance" else (lambda b: predict_classes(model, b))
    was_training = model.training
    model.eval()
    try:
        for batch in loader:
            if on_batch is not None:
                on_batch(batch)
            batch = prepare(batch)
            prediction = predict(batch)
            if on_prediction is not None:
                on_prediction(batch, prediction)
            if isinstance(evaluator, CocoEvaluator):
                evaluator.update(to_device(list(batch["target"]), "cpu"), to_device(list(prediction), "cpu"))
            else:
                evaluator.update(prediction, batch["mask"])
    finally:
        model.train(was_training)
    if isinstance(evaluator, ConfusionMatrix):
        evaluator.all_reduce()  # once: compute() may be called again on the summed matrix
    return evaluator.compute(), evaluator
