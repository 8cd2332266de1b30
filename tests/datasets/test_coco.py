"""coco and coco_semantic against torchvision's CocoDetection and pycocotools' annToMask."""

import contextlib
import io

import numpy as np
import pytest
import torch
from torchvision.datasets import CocoDetection

from segkit.datasets import build_dataset
from segkit.datasets.coco import VOC_COCO_CATEGORIES


def _reference(tmp_path):
    with contextlib.redirect_stdout(io.StringIO()):
        return CocoDetection(str(tmp_path / "val2017"), str(tmp_path / "annotations" / "instances_val2017.json"))


def test_instances_match_cocodetection_and_anntomask(tmp_path, layouts):
    layouts.write_coco(tmp_path)
    ours = build_dataset("coco", root=tmp_path, split="val")
    ref = _reference(tmp_path)
    assert ours.class_names == ("background", "person", "dog", "toothbrush") and ours.num_classes == 4
    label_of = {1: 1, 18: 2, 90: 3}
    assert len(ours) == len(ref) == 3
    kinds = set()
    for i in range(3):
        image, anns = ref[i]
        s = ours[i]
        assert np.array_equal(ours.load_raw(i)[0], np.asarray(image))
        kept = [a for a in anns if a["bbox"][2] > 0 and a["bbox"][3] > 0]  # degenerate boxes dropped
        t = s["target"]
        expected = [ref.coco.annToMask(a) for a in kept]
        kinds |= {("poly" if isinstance(a["segmentation"], list) else "rle", a["iscrowd"]) for a in kept}
        assert t["masks"].shape[0] == len(kept) == len(t["labels"]) == len(t["iscrowd"])
        for k, a in enumerate(kept):
            assert torch.equal(t["masks"][k], torch.from_numpy(expected[k]))
            x, y, w, h = a["bbox"]
            assert t["boxes"][k].tolist() == [x, y, x + w, y + h]
            assert int(t["labels"][k]) == label_of[a["category_id"]] and int(t["iscrowd"][k]) == a["iscrowd"]
    assert kinds == {("poly", 0), ("rle", 1), ("rle", 0)}  # polygons, crowd RLE and compressed RLE all covered
    assert len(build_dataset("coco", root=tmp_path, split="val", drop_empty=True)) == 2


@pytest.mark.parametrize("categories", ["all", "voc"])
def test_semantic_rasterised_like_torchvision_references(tmp_path, layouts, categories):
    layouts.write_coco(tmp_path)
    ours = build_dataset("coco_semantic", root=tmp_path, split="val", categories=categories)
    ref = _reference(tmp_path)
    cat_map = {1: 1, 18: 2, 90: 3} if categories == "all" else {c: i for i, c in enumerate(VOC_COCO_CATEGORIES) if c}
    assert ours.num_classes == (4 if categories == "all" else 21)
    for i in range(3):
        image, anns = ref[i]
        anns = [a for a in anns if a["category_id"] in cat_map]
        h, w = image.height, image.width
        if anns:
            masks = np.stack([ref.coco.annToMask(a) for a in anns])
            cats = np.array([cat_map[a["category_id"]] for a in anns])
            target = (masks * cats[:, None, None]).max(axis=0)
            target[masks.sum(0) > 1] = 255  # overlaps are ignored, as in references/segmentation/coco_utils.py
        else:
            target = np.zeros((h, w), np.uint8)
        assert torch.equal(ours[i]["mask"], torch.from_numpy(target.astype(np.int64)))
    if categories == "voc":
        assert ours.class_names[15] == "person" and ours.class_names[12] == "dog"


def test_missing_split_names_the_files_it_looked_for(tmp_path, layouts):
    """A split that is not there (coco_tiny has no val2017) names the expected paths and the way out."""
    layouts.write_coco(tmp_path, split="train")
    with pytest.raises(FileNotFoundError) as info:
        build_dataset("coco", root=tmp_path, split="val")
    message = str(info.value)
    assert str(tmp_path / "val2017") in message and str(tmp_path / "annotations" / "instances_val2017.json") in message
    assert "{" not in message and "ann_file=" in message and "image_dir=" in message
    (tmp_path / "val2017").mkdir()
    with pytest.raises(FileNotFoundError, match=r"annotation file .*instances_val2017\.json does not exist; expected"):
        build_dataset("coco", root=tmp_path, split="val")
