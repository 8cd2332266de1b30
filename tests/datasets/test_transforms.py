"""Instance presets and transforms keep boxes, labels, masks and iscrowd consistent; crops drop instances."""

import albumentations as A
import numpy as np
import torch
from torchvision.datasets import Cityscapes
from torchvision.ops import masks_to_boxes

from segkit.datasets import build_dataset
from segkit.datasets.transforms import instance_train_transforms, train_transforms


def _tight_boxes(masks: torch.Tensor) -> torch.Tensor:
    boxes = masks_to_boxes(masks.bool())
    boxes[:, 2:] += 1  # segkit boxes use exclusive pixel edges
    return boxes


def test_crop_drops_instances_that_leave_it(tmp_path, layouts):
    layouts.write_cityscapes(tmp_path)
    crop = A.Compose([A.Crop(x_min=0, y_min=0, x_max=16, y_max=12)])
    ds = build_dataset("cityscapes", root=tmp_path, task="instance", transforms=crop)
    inst = np.asarray(Cityscapes(str(tmp_path), split="train", target_type="instance")[0][1])[:12, :16]
    t = ds[0]["target"]
    # By hand: car 26000 inside, car 26001 cut to two rows, the person (rows 15-19) left the crop.
    expected = torch.from_numpy(np.stack([inst == 26000, inst == 26001]).astype(np.uint8))
    assert torch.equal(t["masks"], expected) and t["labels"].tolist() == [3, 3]
    assert torch.equal(t["boxes"], _tight_boxes(expected)) and t["iscrowd"].tolist() == [0, 0]
    assert t["area"].tolist() == expected.sum((1, 2)).float().tolist()
    assert ds[0]["mask"].shape == (12, 16)


def test_instance_preset_padding_is_not_part_of_instances(tmp_path, layouts):
    layouts.write_cityscapes(tmp_path)
    plain = build_dataset("cityscapes", root=tmp_path, task="instance")[1]["target"]
    preset = instance_train_transforms(40, scale=(1.0, 1.0), hflip=0.0, color_jitter=0.0)
    s = build_dataset("cityscapes", root=tmp_path, task="instance", transforms=preset)[1]
    t = s["target"]
    assert s["image"].shape == (3, 40, 40) and t["masks"].shape == (3, 40, 40)
    assert t["masks"].sum((1, 2)).tolist() == plain["masks"].sum((1, 2)).tolist()
    assert torch.equal(t["boxes"], _tight_boxes(t["masks"])) and t["labels"].tolist() == plain["labels"].tolist()
    assert int((s["mask"] == 255).sum()) >= 40 * 40 - 24 * 32  # semantic padding is ignore_index


def test_coco_crowd_flag_follows_its_instance_through_a_flip_and_crop(tmp_path, layouts):
    layouts.write_coco(tmp_path)
    t = A.Compose([A.HorizontalFlip(p=1.0), A.Crop(x_min=16, y_min=0, x_max=32, y_max=24)])
    ds = build_dataset("coco", root=tmp_path, split="val", transforms=t)
    ref = build_dataset("coco", root=tmp_path, split="val")[0]["target"]
    out = ds[0]["target"]
    flipped = ref["masks"].flip(-1)[:, :, 16:]
    keep = [k for k in range(len(flipped)) if flipped[k].any()]
    assert torch.equal(out["masks"], flipped[keep])
    assert out["labels"].tolist() == ref["labels"][keep].tolist()
    assert out["iscrowd"].tolist() == ref["iscrowd"][keep].tolist()
    assert torch.equal(out["boxes"], _tight_boxes(out["masks"]))
    assert 3 in out["labels"].tolist() and out["iscrowd"][out["labels"] == 3].tolist() == [1]


def test_semantic_preset_on_a_file_dataset(tmp_path, layouts):
    layouts.write_voc(tmp_path)
    ds = build_dataset("voc", root=tmp_path, transforms=train_transforms(48, scale=(1.0, 1.0)))
    s = ds[0]
    assert s["image"].shape == (3, 48, 48) and s["mask"].shape == (48, 48)
    raw = ds.load_raw(0)[1]
    assert int((s["mask"] != 255).sum()) == int((raw != 255).sum())


def test_crop_that_leaves_no_instance_gives_empty_target_of_the_crop_size(tmp_path, layouts):
    layouts.write_cityscapes(tmp_path)
    crop = A.Compose([A.Crop(x_min=10, y_min=20, x_max=18, y_max=24)])  # a strip with no instance
    t = build_dataset("cityscapes", root=tmp_path, task="instance", transforms=crop)[0]["target"]
    assert t["masks"].shape == (0, 4, 8) and t["boxes"].shape == (0, 4) and t["labels"].numel() == 0
    assert t["iscrowd"].numel() == 0 and t["area"].numel() == 0
