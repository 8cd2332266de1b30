"""COCO crowd annotations: not training positives (as torchvision's references), still iscrowd=1 ground truth in COCOeval."""

import json
import math

import numpy as np
import torch
from PIL import Image

from segkit import Trainer
from segkit.datasets import build_dataset, training_targets
from tests.engine.test_instance import tiny_mask_rcnn

S = 64


def _uncompressed_rle(mask):
    """COCO's uncompressed RLE (what crowd annotations use): column-major runs, starting with zeros."""
    flat = mask.reshape(-1, order="F")
    bounds = np.r_[0, np.flatnonzero(np.diff(flat)) + 1, flat.size]
    counts = np.diff(bounds).tolist()
    return {"size": [S, S], "counts": ([0] if flat[0] else []) + counts}


def _write_coco(root):
    """Image 1: a normal person (polygon) and a crowd of dogs (RLE); image 2: only a crowd of persons."""
    rng = np.random.default_rng(0)
    (root / "train2017").mkdir()
    for name in ("a.png", "b.png"):
        Image.fromarray(rng.integers(0, 255, (S, S, 3), dtype=np.uint8)).save(root / "train2017" / name)
    crowd_a = np.zeros((S, S), np.uint8)
    crowd_a[36:60, 30:62] = 1
    crowd_b = np.zeros((S, S), np.uint8)
    crowd_b[5:40, 10:50] = 1
    anns = [
        {"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[4, 4, 28, 4, 28, 30, 4, 30]],
         "bbox": [4, 4, 24, 26], "iscrowd": 0},
        {"id": 2, "image_id": 1, "category_id": 2, "segmentation": _uncompressed_rle(crowd_a),
         "bbox": [30, 36, 32, 24], "iscrowd": 1},
        {"id": 3, "image_id": 2, "category_id": 1, "segmentation": _uncompressed_rle(crowd_b),
         "bbox": [10, 5, 40, 35], "iscrowd": 1},
    ]  # fmt: skip
    data = {
        "images": [
            {"id": 1, "file_name": "a.png", "height": S, "width": S},
            {"id": 2, "file_name": "b.png", "height": S, "width": S},
        ],
        "annotations": anns,
        "categories": [{"id": 1, "name": "person"}, {"id": 2, "name": "dog"}],
    }
    (root / "annotations").mkdir()
    (root / "annotations" / "instances_train2017.json").write_text(json.dumps(data))


def test_training_targets_drop_crowd_rows_of_every_per_instance_field():
    masks = torch.zeros(3, 5, 5, dtype=torch.uint8)
    masks[0, 0] = masks[1, 1] = masks[2, 2] = 1
    target = {
        "boxes": torch.tensor([[0.0, 0, 5, 1], [0, 1, 5, 2], [0, 2, 5, 3]]),
        "labels": torch.tensor([1, 2, 3]),
        "masks": masks,
        "area": torch.tensor([5.0, 5.0, 5.0]),
        "iscrowd": torch.tensor([0, 1, 0]),
        "image_id": torch.tensor(7),
    }
    (out,) = training_targets([target])
    assert out["labels"].tolist() == [1, 3] and out["iscrowd"].tolist() == [0, 0]
    assert torch.equal(out["boxes"], target["boxes"][[0, 2]]) and torch.equal(out["masks"], masks[[0, 2]])
    assert out["area"].tolist() == [5.0, 5.0] and int(out["image_id"]) == 7
    assert target["labels"].tolist() == [1, 2, 3]  # the input is not changed (validation reuses it)
    (only_crowd,) = training_targets([{**target, "iscrowd": torch.ones(3, dtype=torch.int64)}])
    assert only_crowd["boxes"].shape == (0, 4) and only_crowd["masks"].shape == (0, 5, 5)
    assert only_crowd["labels"].shape == (0,)


def test_crowd_instances_reach_the_model_in_validation_only(tmp_path):
    _write_coco(tmp_path)
    train = build_dataset("coco", root=tmp_path, split="train")
    val = build_dataset("coco", root=tmp_path, split="train")
    assert sorted(int(c) for i in range(2) for c in train[i]["target"]["iscrowd"]) == [
        0,
        1,
        1,
    ]  # the dataset keeps them
    torch.manual_seed(0)
    model = tiny_mask_rcnn(train.num_classes)
    seen = []

    def record(module, args):
        if module.training:
            seen.extend((int(t["image_id"]), t["labels"].tolist(), tuple(t["boxes"].shape)) for t in args[1])

    model.register_forward_pre_hook(record)
    trainer = Trainer(
        model, None, train, val, task="instance", epochs=1, batch_size=2, out_dir=tmp_path / "run", device="cpu"
    )
    metrics = trainer.fit()
    assert math.isfinite(metrics["train/loss"])  # an image with only crowd annotations trains (empty targets)
    a, b = (int(train[i]["target"]["image_id"]) for i in range(2))  # the ids of a.png and b.png in the targets
    assert sorted(seen) == sorted([(a, [1], (1, 4)), (b, [], (0, 4))])  # only the normal person of a.png
    gt = sorted((g["image_id"], g["category_id"], g["iscrowd"]) for g in trainer.last_coco.gt)
    assert gt == sorted([(a, 1, 0), (a, 2, 1), (b, 1, 1)])  # COCOeval still sees the crowds, as iscrowd=1
