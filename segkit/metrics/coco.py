"""COCO-style detection and instance-mask AP (pycocotools) for any dataset, gathered across processes."""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["CocoEvaluator", "encode_masks"]

_STAT_NAMES = ("ap", "ap50", "ap75", "ap_small", "ap_medium", "ap_large")


def encode_masks(masks: torch.Tensor | np.ndarray) -> list[dict[str, Any]]:
    """RLE-encode binary masks with ``pycocotools.mask.encode``.

    Args:
        masks: ``(K, H, W)`` nonzero = object.

    Returns:
        ``K`` RLE dicts (``size``, ``counts``).
    """
    from pycocotools import mask as mask_util

    arr = masks.detach().cpu().numpy() if isinstance(masks, torch.Tensor) else np.asarray(masks)
    if len(arr) == 0:
        return []
    fortran = np.asfortranarray((arr != 0).astype(np.uint8).transpose(1, 2, 0))
    return list(mask_util.encode(fortran))


class CocoEvaluator:
    """Accumulate ground truth and predictions per image; ``compute`` runs pycocotools ``COCOeval``.

    The COCO ground truth is built in memory from the targets the dataset yields, so any instance
    dataset can be evaluated, not only COCO files. Each image given to ``update`` is one COCO image:
    the evaluator numbers them itself, so targets whose ``image_id`` repeat (the members of a
    ``ConcatDataset`` both count from 0) are never merged into one image. Under ``torchrun`` every rank
    adds its own images and ``compute`` gathers them all (every rank returns the same numbers).

    Args:
        num_classes: classes including background (category ids are ``1 .. num_classes - 1``).
        class_names: optional names, index 0 = background.
        mask_threshold: probability above which a predicted mask pixel is foreground.

    Example:
        >>> ev = CocoEvaluator(num_classes=4)
        >>> ev.update(targets, model(images))  # torchvision detection dicts
        >>> ev.compute()["segm_ap"]
    """

    def __init__(self, num_classes: int, class_names: Sequence[str] | None = None, mask_threshold: float = 0.5) -> None:
        self.num_classes = int(num_classes)
        self.class_names = list(class_names) if class_names else [str(i) for i in range(self.num_classes)]
        self.mask_threshold = mask_threshold
        self.images: list[dict[str, Any]] = []
        self.gt: list[dict[str, Any]] = []
        self.dt: list[dict[str, Any]] = []
        self._ids: set[int] = set()

    def update(
        self, targets: Sequence[dict[str, torch.Tensor]], predictions: Sequence[dict[str, torch.Tensor]]
    ) -> None:
        """Add a batch.

        Args:
            targets: per image ``boxes`` ``(K, 4)`` xyxy, ``labels`` ``(K,)``, ``masks`` ``(K, H, W)``,
                ``image_id``; optional ``area`` and ``iscrowd``.
            predictions: per image ``boxes`` ``(D, 4)`` xyxy, ``labels``, ``scores``, and optional
                ``masks`` ``(D, 1, H, W)`` probabilities (torchvision Mask R-CNN output) or ``(D, H, W)``.
        """
        if len(targets) != len(predictions):
            raise ValueError(f"CocoEvaluator.update: {len(targets)} targets but {len(predictions)} predictions")
        for target, pred in zip(targets, predictions):
            # target["image_id"] repeats across concatenated datasets: a repeated one gets a number of its own
            # (negative, never a dataset index); compute orders the images by target["image_id"] (COCOeval
            # breaks score ties in image order) and renumbers them all.
            image_id = int(target["image_id"])
            if image_id in self._ids:
                image_id = -len(self._ids) - 1
            self._ids.add(image_id)
            masks = target["masks"]
            h, w = int(masks.shape[-2]), int(masks.shape[-1])
            self.images.append({"id": image_id, "height": h, "width": w, "order": int(target["image_id"])})
            boxes = _xywh(target["boxes"])
            areas = target.get("area", masks.flatten(1).sum(1) if len(masks) else torch.zeros(0))
            crowd = target.get("iscrowd", torch.zeros(len(boxes), dtype=torch.int64))
            for box, label, rle, area, iscrowd in zip(
                boxes, target["labels"].tolist(), encode_masks(masks), areas.tolist(), crowd.tolist()
            ):
                self.gt.append(
                    {
                        "image_id": image_id,
                        "category_id": int(label),
                        "bbox": box,
                        "segmentation": rle,
                        "area": float(area),
                        "iscrowd": int(iscrowd),
                    }
                )
            pboxes = _xywh(pred["boxes"])
            if "masks" in pred:
                pm = pred["masks"]
                pm = pm[:, 0] if pm.dim() == 4 else pm
                rles: list[Any] = encode_masks(pm > self.mask_threshold)
            else:
                rles = [None] * len(pboxes)
            for box, label, score, rle in zip(pboxes, pred["labels"].tolist(), pred["scores"].tolist(), rles):
                det = {"image_id": image_id, "category_id": int(label), "bbox": box, "score": float(score)}
                if rle is not None:
                    det["segmentation"] = rle
                self.dt.append(det)

    def compute(self) -> dict[str, float]:
        """Gather all ranks and return ``bbox_ap``, ``bbox_ap50``, ``bbox_ap75`` (and ``segm_*`` when
        masks were predicted), plus the small/medium/large APs; values in [0, 1], or NaN for a size range
        with no ground-truth object (COCOeval's -1: undefined, not zero).

        Images without any prediction count as misses; with no predictions at all every AP is 0.
        """
        from segkit.distributed import all_gather_objects

        parts = all_gather_objects((self.images, self.gt, self.dt))
        # Each rank numbered its images 1..n. Renumber all of them in the dataset's image order (then rank, then
        # arrival), so every image stays its own and the result does not depend on how images were sharded.
        keys = sorted((img["order"], rank, img["id"]) for rank, part in enumerate(parts) for img in part[0])
        new_id = {(rank, old): n + 1 for n, (_, rank, old) in enumerate(keys)}
        images: list[dict[str, Any]] = []
        gt: list[dict[str, Any]] = []
        dt: list[dict[str, Any]] = []
        for rank, part in enumerate(parts):
            images += [
                {"id": new_id[rank, img["id"]], "height": img["height"], "width": img["width"]} for img in part[0]
            ]
            gt += [{**a, "image_id": new_id[rank, a["image_id"]]} for a in part[1]]
            dt += [{**d, "image_id": new_id[rank, d["image_id"]]} for d in part[2]]
        kinds = ["bbox"] + (["segm"] if not dt or all("segmentation" in d for d in dt) else [])
        out: dict[str, float] = {}
        for kind in kinds:
            stats = self._evaluate(images, gt, dt, kind)
            out.update({f"{kind}_{name}": float(v) for name, v in zip(_STAT_NAMES, stats)})
        return out

    def _evaluate(self, images: list[dict], gt: list[dict], dt: list[dict], kind: str) -> list[float]:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        if not dt or not gt:
            return [0.0] * len(_STAT_NAMES)
        with contextlib.redirect_stdout(io.StringIO()):
            coco_gt = COCO()
            anns = [{**a, "id": i + 1} for i, a in enumerate(gt)]
            cats = [{"id": c, "name": self.class_names[c]} for c in range(1, self.num_classes)]
            coco_gt.dataset = {"images": images, "annotations": anns, "categories": cats}
            coco_gt.createIndex()
            coco_dt = coco_gt.loadRes([dict(d) for d in dt])
            ev = COCOeval(coco_gt, coco_dt, iouType=kind)
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        # COCOeval writes -1 where a size range has no ground truth: undefined, so NaN (as an absent class's
        # IoU), never a 0 that reads as a failure (the shapes data, say, has no "large" objects).
        return [float(s) if s >= 0 else math.nan for s in ev.stats[: len(_STAT_NAMES)]]

    def reset(self) -> None:
        """Forget everything added."""
        self.images, self.gt, self.dt = [], [], []
        self._ids = set()


def _xywh(boxes: torch.Tensor) -> list[list[float]]:
    b = boxes.detach().cpu().double()
    if len(b) == 0:
        return []
    return torch.stack([b[:, 0], b[:, 1], b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], 1).tolist()
