"""Instance task: a tiny torchvision Mask R-CNN trains on shapes; AP equals pycocotools run by the test."""

import contextlib
import io
import json

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_util
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from torch import nn

from segkit import Trainer
from segkit.checkpoint import load_checkpoint


def tiny_mask_rcnn(num_classes):
    """A Mask R-CNN with a 2-conv backbone and small heads (torchvision classes, no weights)."""
    from torchvision.models.detection import MaskRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
    from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
    from torchvision.ops import MultiScaleRoIAlign as RoIAlign

    backbone = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.ReLU(), nn.Conv2d(16, 16, 3, 2, 1), nn.ReLU())
    backbone.out_channels = 16
    return MaskRCNN(
        backbone,
        num_classes=None,
        min_size=64,
        max_size=64,
        rpn_anchor_generator=AnchorGenerator(((8, 16, 32),), ((0.5, 1.0, 2.0),)),
        box_roi_pool=RoIAlign(["0"], 7, 2),
        mask_roi_pool=RoIAlign(["0"], 14, 2),
        box_head=TwoMLPHead(16 * 7 * 7, 64),
        box_predictor=FastRCNNPredictor(64, num_classes),
        mask_head=MaskRCNNHeads(16, [16], 1),
        mask_predictor=MaskRCNNPredictor(16, 16, num_classes),
        rpn_pre_nms_top_n_train=100,
        rpn_post_nms_top_n_train=50,
        rpn_pre_nms_top_n_test=50,
        rpn_post_nms_top_n_test=30,
        rpn_batch_size_per_image=32,
        box_batch_size_per_image=32,
        box_score_thresh=0.0,
        box_detections_per_img=20,
    )


def _pycocotools_ap(model, data):
    """Independent evaluation: COCO dicts written here, model run here, COCOeval on both iou types."""
    images, anns, dets = [], [], []
    model.eval()
    with torch.no_grad():
        for i in range(len(data)):
            sample = data[i]
            t, p = sample["target"], model([sample["image"]])[0]
            iid = int(t["image_id"])
            images.append({"id": iid, "height": 64, "width": 64})
            for k in range(len(t["labels"])):
                x1, y1, x2, y2 = t["boxes"][k].tolist()
                m = t["masks"][k].numpy()
                anns.append(
                    {
                        "id": len(anns) + 1,
                        "image_id": iid,
                        "category_id": int(t["labels"][k]),
                        "bbox": [x1, y1, x2 - x1, y2 - y1],
                        "area": float(m.sum()),
                        "iscrowd": 0,
                        "segmentation": mask_util.encode(np.asfortranarray(m)),
                    }
                )
            for k in range(len(p["labels"])):
                x1, y1, x2, y2 = p["boxes"][k].tolist()
                m = np.asfortranarray((p["masks"][k, 0] > 0.5).numpy().astype(np.uint8))
                dets.append(
                    {
                        "image_id": iid,
                        "category_id": int(p["labels"][k]),
                        "score": float(p["scores"][k]),
                        "bbox": [x1, y1, x2 - x1, y2 - y1],
                        "segmentation": mask_util.encode(m),
                    }
                )
    assert len(dets) > 0
    out = {}
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {"images": images, "annotations": anns, "categories": [{"id": c} for c in range(1, 4)]}
        gt.createIndex()
        for kind in ("bbox", "segm"):
            ev = COCOeval(gt, gt.loadRes(dets), kind)
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
            names = ("ap", "ap50", "ap75", "ap_small", "ap_medium", "ap_large")
            out.update({f"{kind}_{n}": float(v) for n, v in zip(names, ev.stats)})
    return out


def test_mask_rcnn_trains_and_reports_coco_ap(tmp_path):
    from segkit.datasets import build_dataset

    torch.manual_seed(0)
    train = build_dataset("shapes", split="train", task="instance", image_size=64, num_images=8)
    val = build_dataset("shapes", split="val", task="instance", image_size=64, num_images=3)
    trainer = Trainer(
        tiny_mask_rcnn(train.num_classes),
        None,
        train,
        val,
        task="instance",
        epochs=1,
        batch_size=4,
        lr=1e-3,
        log_every=1,
        out_dir=tmp_path,
    )
    assert trainer.monitor == "segm_ap"
    metrics = trainer.fit()
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    terms = {"loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness", "loss_rpn_box_reg"}
    step = next(r for r in rows if "train/lr" in r)
    assert {f"train/loss/{t}" for t in terms} <= set(step)
    assert step["train/loss"] == pytest.approx(sum(step[f"train/loss/{t}"] for t in terms), rel=1e-5)
    ref = _pycocotools_ap(trainer.eval_model, val)
    assert ref["segm_ap_large"] == -1  # 64 px images hold no object over 96x96 pixels
    for key, value in ref.items():
        if value == -1:  # COCOeval: no ground truth in that size range -> NaN (undefined), not 0
            assert np.isnan(metrics[f"val/{key}"]), key
        else:
            assert metrics[f"val/{key}"] == pytest.approx(value, abs=1e-9), key
    assert load_checkpoint(tmp_path / "last.pt")["task"] == "instance"
