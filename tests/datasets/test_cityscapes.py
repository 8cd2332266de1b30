"""cityscapes against torchvision's Cityscapes reader and its label table."""

import numpy as np
import pytest
import torch
from torchvision.datasets import Cityscapes
from torchvision.ops import masks_to_boxes

from segkit.datasets import build_dataset


def _train_id_lut():
    lut = np.full(256, 255, np.int64)
    for c in Cityscapes.classes:  # torchvision's copy of the official table
        if c.id >= 0:
            lut[c.id] = c.train_id if 0 <= c.train_id < 255 else 255
    return lut


@pytest.mark.parametrize("mode,gt,split", [("fine", "gtFine", "train"), ("coarse", "gtCoarse", "train_extra")])
def test_semantic_matches_torchvision_with_official_train_ids(tmp_path, layouts, mode, gt, split):
    layouts.write_cityscapes(tmp_path, split=split, gt=gt)
    ours = build_dataset("cityscapes", root=tmp_path, split=split, mode=mode)
    ref = Cityscapes(str(tmp_path), split=split, mode=mode, target_type="semantic")
    lut = _train_id_lut()
    assert len(ours) == len(ref) == 2 and ours.num_classes == 19
    assert ours.class_names[0] == "road" and ours.class_names[18] == "bicycle"
    for i in range(2):
        image, target = ref[i]
        raw_image, raw_mask, _ = ours.load_raw(i)
        assert np.array_equal(raw_image, np.asarray(image))
        assert np.array_equal(raw_mask, lut[np.asarray(target)])
        assert torch.equal(ours[i]["mask"], torch.from_numpy(lut[np.asarray(target)]))


def test_instances_from_instance_ids(tmp_path, layouts):
    layouts.write_cityscapes(tmp_path)
    ours = build_dataset("cityscapes", root=tmp_path, split="train", task="instance")
    ref = Cityscapes(str(tmp_path), split="train", target_type="instance")
    assert ours.num_classes == 9
    assert ours.class_names[1:] == ("person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle")
    for i in range(2):
        inst = np.asarray(ref[i][1]).astype(np.int64)
        t = ours[i]["target"]
        # Hand-computed: ids >= 1000 whose class (id // 1000) is one of the 8 with a train id; caravan (29) left out.
        values = [v for v in np.unique(inst) if v >= 1000 and v // 1000 in (24, 25, 26, 27, 28, 31, 32, 33)]
        assert sorted(values) == [24000, 26000, 26001]
        expected = np.stack([inst == v for v in values]).astype(np.uint8)
        assert torch.equal(t["masks"], torch.from_numpy(expected))
        assert t["labels"].tolist() == [1, 3, 3]  # person, car, car
        ref_boxes = masks_to_boxes(torch.from_numpy(expected).bool())
        ref_boxes[:, 2:] += 1
        assert torch.equal(t["boxes"], ref_boxes)
        assert t["iscrowd"].tolist() == [0, 0, 0] and t["area"].tolist() == expected.sum((1, 2)).tolist()
