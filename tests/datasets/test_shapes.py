"""The built-in synthetic shapes dataset: determinism and consistency of its targets."""

import numpy as np
import pytest
import torch
from torchvision.ops import masks_to_boxes

from segkit.datasets import build_dataset


def test_deterministic_by_seed_and_independent_of_order():
    a = build_dataset("shapes", split="train", num_images=6, image_size=40, seed=3)
    b = build_dataset("shapes", split="train", num_images=6, image_size=40, seed=3)
    for i in reversed(range(6)):
        sa, sb = a[i], b[i]
        assert torch.equal(sa["image"], sb["image"]) and torch.equal(sa["mask"], sb["mask"])
    c = build_dataset("shapes", split="train", num_images=6, image_size=40, seed=4)
    assert not torch.equal(a[0]["image"], c[0]["image"])
    val = build_dataset("shapes", split="val", num_images=6, image_size=40, seed=3)
    assert not torch.equal(a[0]["image"], val[0]["image"])


def test_sample_format_and_value_ranges():
    ds = build_dataset("shapes", num_images=4, image_size=(32, 48), num_classes=6)
    s = ds[1]
    assert s["image"].shape == (3, 32, 48) and s["image"].dtype == torch.float32
    assert s["mask"].shape == (32, 48) and s["mask"].dtype == torch.int64
    assert int(s["mask"].min()) >= 0 and int(s["mask"].max()) < 6
    assert ds.num_classes == 6 and len(ds.class_names) == 6 and ds.palette.shape == (6, 3)


@pytest.mark.parametrize("index", range(12))
def test_instance_masks_agree_with_boxes_labels_and_semantic_mask(index):
    ds = build_dataset("shapes", num_images=12, image_size=48, task="instance", max_objects=5)
    s = ds[index]
    t = s["target"]
    k = len(t["labels"])
    assert k >= 1
    assert t["masks"].shape == (k, 48, 48) and t["masks"].dtype == torch.uint8
    # Box = tight box of the visible mask; torchvision's masks_to_boxes gives inclusive maxima.
    ref = masks_to_boxes(t["masks"].bool())
    ref[:, 2:] += 1
    assert torch.equal(t["boxes"], ref)
    assert torch.equal(t["area"], t["masks"].flatten(1).sum(1).float())
    # Instances do not overlap, and their union painted with labels is the semantic mask.
    assert int(t["masks"].sum(0).max()) <= 1
    painted = (t["masks"].long() * t["labels"].view(-1, 1, 1)).sum(0)
    assert torch.equal(painted, s["mask"])
    assert t["iscrowd"].tolist() == [0] * k


def test_no_object_is_more_than_half_hidden():
    ds = build_dataset("shapes", num_images=20, image_size=48, task="instance", max_objects=6, seed=1)
    for i in range(20):
        assert all(int(m.sum()) >= 6 for m in ds[i]["target"]["masks"])


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_classes must be in"):
        build_dataset("shapes", num_classes=9)
    with pytest.raises(ValueError, match="split must be one of"):
        build_dataset("shapes", split="training")
    with pytest.raises(IndexError):
        build_dataset("shapes", num_images=2).generate(2)


def test_albumentations_transform_keeps_instances_consistent():
    import albumentations as A

    t = A.Compose([A.HorizontalFlip(p=1.0)])
    plain = build_dataset("shapes", num_images=2, image_size=40, task="instance")[0]
    flipped = build_dataset("shapes", num_images=2, image_size=40, task="instance", transforms=t)[0]
    assert torch.equal(flipped["mask"], plain["mask"].flip(-1))
    assert torch.equal(flipped["target"]["masks"], plain["target"]["masks"].flip(-1))
    w = 40
    expected = plain["target"]["boxes"][:, [2, 1, 0, 3]] * torch.tensor([-1, 1, -1, 1]) + torch.tensor([w, 0, w, 0])
    assert torch.equal(flipped["target"]["boxes"], expected)
    assert np.isclose(float(flipped["image"].std()), float(plain["image"].std()), rtol=1e-4)


def test_rotate_false_draws_axis_aligned_squares():
    ds = build_dataset("shapes", num_images=12, image_size=48, task="instance", num_classes=3, rotate=False)
    squares = 0
    for i in range(12):
        t = ds[i]["target"]
        for k, (mask, label, box) in enumerate(zip(t["masks"], t["labels"], t["boxes"])):
            if label != 2:
                continue
            squares += 1
            x1, y1, x2, y2 = box.int().tolist()
            others = t["masks"][[j for j in range(len(t["labels"])) if j != k]].sum(0)[y1:y2, x1:x2]
            # An unrotated square fills its bounding box, except where a later object hides it.
            assert int(mask.sum()) == (x2 - x1) * (y2 - y1) or bool(others.any())
    assert squares >= 3
