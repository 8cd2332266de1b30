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


def _draw(kind, h, w, cy, cx, r, angle):
    """The shape's pixels (centres at +0.5) by plane geometry: disc, rotated square of half-side r/sqrt(2),
    equilateral triangle of inradius r/2, rhombus of half-diagonals r and 0.6 r, annulus of radii 0.55 r and r."""
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    dy, dx = yy - cy, xx - cx
    u, v = np.cos(angle) * dx + np.sin(angle) * dy, np.cos(angle) * dy - np.sin(angle) * dx  # the shape's axes
    if kind == "circle":
        return np.hypot(dy, dx) <= r
    if kind == "square":
        return np.maximum(np.abs(u), np.abs(v)) <= r / np.sqrt(2)
    if kind == "triangle":  # inside when no edge is farther than the inradius along its outward normal
        normals = angle + np.pi + np.array([0, 2, 4]) * np.pi / 3  # each edge faces away from its opposite vertex
        return np.all([dx * np.cos(a) + dy * np.sin(a) <= r / 2 for a in normals], axis=0)
    if kind == "diamond":
        return 0.6 * r * np.abs(u) + r * np.abs(v) <= 0.6 * r * r
    if kind == "ring":
        return (np.hypot(dy, dx) <= r) & (np.hypot(dy, dx) >= 0.55 * r)
    raise AssertionError(kind)


def test_occlusion_leaves_every_object_at_least_half_visible(monkeypatch):
    """Each instance mask is its shape minus the shapes drawn after it and keeps at least half of its area;
    every placement that was refused would have hidden more than half of an earlier object (or was tiny)."""
    from segkit.datasets import shapes

    calls, kept = [], []
    rasterise, colour = shapes._rasterise, shapes._distinct_colour

    def record_shape(kind, yy, xx, cy, cx, r, angle):
        calls.append((kind, cy, cx, r, angle))
        return rasterise(kind, yy, xx, cy, cx, r, angle)

    def record_kept(*args, **kwargs):  # called once per object kept, right after its shape
        kept.append(len(calls) - 1)
        return colour(*args, **kwargs)

    monkeypatch.setattr(shapes, "_rasterise", record_shape)
    monkeypatch.setattr(shapes, "_distinct_colour", record_kept)
    ds = build_dataset(
        "shapes", num_images=30, image_size=48, task="instance", max_objects=8, num_classes=6, max_size=0.3, seed=1
    )
    occluded = refused = 0
    for i in range(len(ds)):
        calls.clear()
        kept.clear()
        target = ds[i]["target"]
        visible, full = [], []  # replayed with shapes drawn independently
        for n, params in enumerate(calls):
            shape = _draw(params[0], 48, 48, *params[1:])
            if n not in kept:
                hides = any(2 * (v & ~shape).sum() < f.sum() for v, f in zip(visible, full))
                assert hides or shape.sum() < 12, (i, n)
                refused += int(hides)
                continue
            visible = [v & ~shape for v in visible] + [shape]
            full.append(shape)
        assert np.array_equal(target["masks"].numpy().astype(bool), np.stack(visible)), i
        assert target["area"].tolist() == [float(v.sum()) for v in visible]
        assert all(2 * v.sum() >= f.sum() for v, f in zip(visible, full)), i
        occluded += sum(int(v.sum() < f.sum()) for v, f in zip(visible, full))
    assert occluded >= 10 and refused >= 10  # the set exercises both the occlusion and the refusals


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
