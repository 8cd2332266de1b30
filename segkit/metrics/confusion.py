"""Streaming confusion matrix for semantic segmentation: one ``bincount`` per batch, on the device."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

__all__ = ["ConfusionMatrix"]


class ConfusionMatrix:
    """Accumulates a ``(C, C)`` confusion matrix (rows = target, columns = prediction).

    Pixels whose target is ``ignore_index`` are not counted. A target label outside ``[0, C)`` (other than
    ``ignore_index``) or a prediction outside ``[0, C)`` means the data, the model and ``C`` disagree: such
    pixels are counted apart and ``compute`` raises, naming how many, instead of scoring without them.
    Per-class scores come from the matrix of the whole set; a class absent from both target
    and prediction gets NaN and is left out of the means (the Cityscapes/mmseg convention).

    Args:
        num_classes: C.
        ignore_index: target value to skip.
        device: where the matrix lives (the device of the predictions avoids copies).
        class_names: optional names used by ``table``.

    Example:
        >>> cm = ConfusionMatrix(3)
        >>> cm.update(torch.tensor([[0, 1]]), torch.tensor([[0, 2]]))
        >>> cm.compute()["pixel_accuracy"]
        0.5
    """

    def __init__(
        self,
        num_classes: int,
        ignore_index: int = 255,
        device: torch.device | str | None = None,
        class_names: Sequence[str] | None = None,
    ) -> None:
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        self.class_names = list(class_names) if class_names is not None else [str(i) for i in range(num_classes)]
        self.mat = torch.zeros((num_classes, num_classes), dtype=torch.int64, device=device)
        # Pixels of labels / predictions outside [0, C): counted on the device, checked in compute().
        self.out_of_range = torch.zeros(2, dtype=torch.int64, device=device)

    def reset(self) -> None:
        """Zero the matrix."""
        self.mat.zero_()
        self.out_of_range.zero_()

    @torch.no_grad()
    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch.

        Args:
            pred: int predictions ``(N, H, W)`` (or logits ``(N, C, H, W)``, arg-maxed here).
            target: int64 labels ``(N, H, W)``.
        """
        if pred.dim() == target.dim() + 1:
            pred = pred.argmax(1)
        if pred.shape != target.shape:
            raise ValueError(
                f"ConfusionMatrix.update: pred {tuple(pred.shape)} and target {tuple(target.shape)} differ"
            )
        n = self.num_classes
        if self.mat.device != target.device:
            self.mat = self.mat.to(target.device)
            self.out_of_range = self.out_of_range.to(target.device)
        target = target.reshape(-1)
        pred = pred.reshape(-1).to(target.dtype)
        ignored = target == self.ignore_index
        label_ok = (target >= 0) & (target < n)
        pred_ok = (pred >= 0) & (pred < n)
        valid = label_ok & ~ignored & pred_ok
        # Uncounted pixels go to extra bins: cheaper than boolean indexing (two gathers, and a host sync
        # on CUDA), and the same counts. Bin n*n: ignored; n*n+1: label out of range; n*n+2: prediction.
        spare = torch.where(ignored, n * n, torch.where(label_ok, n * n + 2, n * n + 1))
        idx = torch.where(valid, target * n + pred.clamp(0, n - 1), spare)
        counts = torch.bincount(idx, minlength=n * n + 3)
        self.mat += counts[: n * n].reshape(n, n)
        self.out_of_range += counts[n * n + 1 :]

    def all_reduce(self) -> None:
        """Sum the matrix over all processes of the default group (no-op when not distributed)."""
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(self.mat)
            dist.all_reduce(self.out_of_range)

    def compute(self) -> dict[str, Any]:
        """Return the scores of everything seen so far.

        Returns:
            Dict with floats ``miou``, ``mdice``, ``pixel_accuracy``, ``mean_accuracy`` and lists
            ``iou``, ``dice``, ``accuracy`` (one per class, NaN for classes absent from both target and
            prediction; accuracy is NaN for classes absent from the target).

        Raises:
            ValueError: some target label (not ``ignore_index``) or prediction was outside ``[0, C)``.
        """
        labels, preds = (int(v) for v in self.out_of_range.tolist())
        if labels or preds:
            raise ValueError(
                f"ConfusionMatrix: {labels} target pixels with labels outside [0, {self.num_classes}) (and not "
                f"ignore_index={self.ignore_index}) and {preds} predicted pixels outside it: the data, the model "
                f"and num_classes={self.num_classes} disagree, so the scores would leave those pixels out. Give "
                f"the model and the metric the data's number of classes, or map those labels to ignore_index."
            )
        mat = self.mat.double().cpu()
        tp = mat.diag()
        gt = mat.sum(1)
        pr = mat.sum(0)
        union = gt + pr - tp
        nan = torch.tensor(float("nan"), dtype=torch.float64)
        iou = torch.where(union > 0, tp / union.clamp_min(1), nan)
        dice = torch.where(gt + pr > 0, 2 * tp / (gt + pr).clamp_min(1), nan)
        acc = torch.where(gt > 0, tp / gt.clamp_min(1), nan)
        total = mat.sum()
        return {
            "miou": _nanmean(iou),
            "mdice": _nanmean(dice),
            "pixel_accuracy": float(tp.sum() / total) if total > 0 else float("nan"),
            "mean_accuracy": _nanmean(acc),
            "iou": iou.tolist(),
            "dice": dice.tolist(),
            "accuracy": acc.tolist(),
        }

    def table(self) -> str:
        """Return a plain-text table of per-class IoU, Dice and accuracy plus the means."""
        r = self.compute()
        width = max(10, *(len(n) for n in self.class_names))
        lines = [f"{'class':<{width}}  {'IoU':>7}  {'Dice':>7}  {'Acc':>7}"]
        for name, i, d, a in zip(self.class_names, r["iou"], r["dice"], r["accuracy"]):
            lines.append(f"{name:<{width}}  {_fmt(i)}  {_fmt(d)}  {_fmt(a)}")
        lines.append(f"{'mean':<{width}}  {_fmt(r['miou'])}  {_fmt(r['mdice'])}  {_fmt(r['mean_accuracy'])}")
        lines.append(f"pixel accuracy {r['pixel_accuracy']:.4f}")
        return "\n".join(lines)


def _nanmean(x: torch.Tensor) -> float:
    ok = ~torch.isnan(x)
    return float(x[ok].mean()) if bool(ok.any()) else float("nan")


def _fmt(v: float) -> str:
    return f"{'n/a':>7}" if math.isnan(v) else f"{v:7.4f}"
