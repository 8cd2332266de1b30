"""CocoEvaluator against pycocotools run directly on COCO dicts written by the test."""

import contextlib
import io

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_util
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from segkit.metrics import CocoEvaluator


def _square(h, w, y, x, s):
    m = np.zeros((h, w), np.uint8)
    m[y : y + s, x : x + s] = 1
    return m


def _targets_and_predictions():
    rng = np.random.default_rng(0)
    targets, preds = [], []
    for image_id in range(4):
        masks, labels = [], []
        for _ in range(3):
            y, x, s = (int(v) for v in rng.integers(0, 40, 3))
            masks.append(_square(64, 64, y, x, s + 6))
            labels.append(int(rng.integers(1, 3)))
        m = torch.from_numpy(np.stack(masks))
        ys, xs = m.any(2), m.any(1)
        boxes = torch.tensor(
            [
                [x.nonzero().min(), y.nonzero().min(), x.nonzero().max() + 1, y.nonzero().max() + 1]
                for x, y in zip(xs, ys)
            ],
            dtype=torch.float32,
        )
        targets.append({"boxes": boxes, "labels": torch.tensor(labels), "masks": m, "image_id": torch.tensor(image_id)})
        # Predictions: shifted copies (some IoUs fall below 0.75), one wrong class, one spurious box.
        shift = torch.tensor([1, 2, 3])[:, None, None]
        pm = torch.stack([torch.roll(m[k], int(shift[k]), dims=1) for k in range(3)]).float()
        pboxes = boxes + torch.tensor([[1.0, 0, 1, 0], [2, 0, 2, 0], [3, 0, 3, 0]])
        plabels = torch.tensor(labels)
        plabels[2] = 3 - plabels[2] if image_id % 2 else plabels[2]
        pm = torch.cat([pm, torch.from_numpy(_square(64, 64, 50, 50, 8)).float()[None]])
        pboxes = torch.cat([pboxes, torch.tensor([[50.0, 50, 58, 58]])])
        preds.append(
            {
                "boxes": pboxes,
                "labels": torch.cat([plabels, torch.tensor([1])]),
                "scores": torch.tensor([0.9, 0.8, 0.7, 0.95]),
                "masks": pm[:, None] * 0.9,
            }
        )
    return targets, preds


def _reference(targets, preds, kind):
    images, anns, dets = [], [], []
    for t, p in zip(targets, preds):
        iid = int(t["image_id"])
        images.append({"id": iid, "height": 64, "width": 64})
        for k in range(len(t["labels"])):
            x1, y1, x2, y2 = t["boxes"][k].tolist()
            m = np.asfortranarray(t["masks"][k].numpy().astype(np.uint8))
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": iid,
                    "category_id": int(t["labels"][k]),
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": float(m.sum()),
                    "iscrowd": 0,
                    "segmentation": mask_util.encode(m),
                }
            )
        for k in range(len(p["labels"])):
            x1, y1, x2, y2 = p["boxes"][k].tolist()
            m = np.asfortranarray((p["masks"][k, 0] > 0.5).numpy().astype(np.uint8))
            dets.append(
                {
                    "image_id": iid,
                    "category_id": int(p["labels"][k]),
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "score": float(p["scores"][k]),
                    "segmentation": mask_util.encode(m),
                }
            )
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {"images": images, "annotations": anns, "categories": [{"id": 1}, {"id": 2}]}
        gt.createIndex()
        ev = COCOeval(gt, gt.loadRes(dets), kind)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats[:3]


def test_matches_pycocotools_on_the_same_predictions():
    targets, preds = _targets_and_predictions()
    ev = CocoEvaluator(num_classes=3)
    ev.update(targets[:2], preds[:2])  # two batches
    ev.update(targets[2:], preds[2:])
    out = ev.compute()
    for kind in ("bbox", "segm"):
        ref = _reference(targets, preds, kind)
        assert 0.0 < ref[0] < 1.0
        assert [out[f"{kind}_ap"], out[f"{kind}_ap50"], out[f"{kind}_ap75"]] == pytest.approx(list(ref), abs=1e-9)


def test_perfect_predictions_score_one_and_none_score_zero():
    targets, _ = _targets_and_predictions()
    perfect = [
        {
            "boxes": t["boxes"],
            "labels": t["labels"],
            "scores": torch.ones(len(t["labels"])),
            "masks": t["masks"][:, None].float(),
        }
        for t in targets
    ]
    ev = CocoEvaluator(num_classes=3)
    ev.update(targets, perfect)
    out = ev.compute()
    assert out["bbox_ap"] == pytest.approx(1.0) and out["segm_ap"] == pytest.approx(1.0)
    empty = [
        {
            "boxes": torch.zeros(0, 4),
            "labels": torch.zeros(0, dtype=torch.int64),
            "scores": torch.zeros(0),
            "masks": torch.zeros(0, 1, 64, 64),
        }
        for _ in targets
    ]
    ev.reset()
    ev.update(targets, empty)
    assert ev.compute()["segm_ap"] == 0.0
    with pytest.raises(ValueError, match="2 targets but 1 predictions"):
        ev.update(targets[:2], empty[:1])


def test_images_with_the_same_image_id_are_never_merged():
    """The members of a ConcatDataset both number their images from 0: each image given to update is its own
    COCO image, so a detection is matched against its own image's objects only (merged, both would match)."""
    box1, box2 = torch.tensor([[2.0, 2.0, 12.0, 12.0]]), torch.tensor([[18.0, 18.0, 28.0, 28.0]])

    def target(box):
        m = torch.zeros(1, 32, 32, dtype=torch.uint8)
        x1, y1, x2, y2 = (int(v) for v in box[0])
        m[0, y1:y2, x1:x2] = 1
        return {"boxes": box, "labels": torch.tensor([1]), "masks": m, "image_id": torch.tensor(0)}

    def pred(box, score):
        t = target(box)
        return {
            "boxes": box,
            "labels": torch.tensor([1]),
            "scores": torch.tensor([score]),
            "masks": t["masks"][:, None],
        }

    ev = CocoEvaluator(num_classes=2)
    ev.update([target(box1), target(box2)], [pred(box2, 0.9), pred(box1, 0.8)])  # each detection on the other image
    swapped = ev.compute()
    assert swapped["bbox_ap"] == 0.0 and swapped["segm_ap"] == 0.0
    ev.reset()
    ev.update([target(box1)], [pred(box1, 0.9)])
    ev.update([target(box2)], [pred(box2, 0.8)])  # a second batch whose image_id is 0 again
    assert ev.compute()["bbox_ap"] == pytest.approx(1.0) and ev.compute()["segm_ap"] == pytest.approx(1.0)
