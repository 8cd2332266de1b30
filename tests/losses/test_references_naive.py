"""Losses without an installed peer, against deliberately naive loops / numpy in the test, and identities."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from segkit.losses import LOSSES
from segkit.losses.functional_distance import distance_field, edt, signed_distance_map

from ._cases import inputs


def _multi(n=2, c=4, h=8, w=9, seed=0):
    logits, target = inputs("multiclass", n=n, c=c, h=h, w=w, seed=seed)
    target[0, h // 2, 2:4] = 255
    return logits, target


def _naive_ce(logits, target):
    """Per-pixel CE by a loop over pixels, with log-sum-exp written out."""
    n, c, h, w = logits.shape
    out = np.zeros((n, h, w))
    x = logits.numpy()
    for b in range(n):
        for i in range(h):
            for j in range(w):
                y = int(target[b, i, j])
                if y == 255:
                    continue
                m = x[b, :, i, j].max()
                out[b, i, j] = m + math.log(np.exp(x[b, :, i, j] - m).sum()) - x[b, y, i, j]
    return out


# --- cross-entropy family -----------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [10, 37.5])
def test_topk_ce_matches_naive_sort(k):
    logits, target = _multi()
    ce = _naive_ce(logits, target)
    values = sorted(ce[(target != 255).numpy()].tolist(), reverse=True)
    keep = max(1, int(math.floor(len(values) * k / 100)))
    expected = sum(values[:keep]) / keep
    assert LOSSES.build("topk_ce", k=k)(logits, target).item() == pytest.approx(expected, rel=1e-10)


def test_topk_ce_with_k_100_equals_ce():
    logits, target = _multi()
    torch.testing.assert_close(LOSSES.build("topk_ce", k=100)(logits, target), LOSSES.build("ce")(logits, target))


def test_dist_penalized_ce_matches_naive_per_image_per_class_loop():
    logits, target = _multi(h=10, w=11)
    target[1] = 2  # image 1: class 2 fills the image (no border: phi 0), the others are absent
    ce = _naive_ce(logits, target)
    phi = np.zeros(ce.shape)
    t = target.numpy()
    for b in range(t.shape[0]):
        for c in range(logits.shape[1]):
            region = t[b] == c  # ignored pixels (255) are outside every region
            if not region.any() or region.all():
                continue
            d = ndimage.distance_transform_edt(region)
            phi[b][region] = 1 - d[region] / d.max()
    valid = t != 255
    expected = ((1 + phi) * ce)[valid].sum() / valid.sum()
    assert LOSSES.build("dist_penalized_ce")(logits, target).item() == pytest.approx(expected, rel=1e-10)


def test_sensitivity_specificity_matches_naive_loop():
    logits, target = _multi()
    p = torch.softmax(logits, 1).numpy()
    t = target.numpy()
    r, smooth = 0.05, 1e-5
    terms = []
    for c in range(p.shape[1]):
        sens_num = spec_num = pos = neg = 0.0
        for b, i, j in np.ndindex(*t.shape):
            if t[b, i, j] == 255:
                continue
            y = float(t[b, i, j] == c)
            sq = (y - p[b, c, i, j]) ** 2
            sens_num += sq * y
            spec_num += sq * (1 - y)
            pos += y
            neg += 1 - y
        terms.append(r * sens_num / (pos + smooth) + (1 - r) * spec_num / (neg + smooth))
    got = LOSSES.build("sensitivity_specificity")(logits, target).item()
    assert got == pytest.approx(float(np.mean(terms)), rel=1e-10)


def test_iou_balanced_value_equals_ce_and_gradient_uses_detached_weights():
    logits, target = _multi()
    iou = torch.rand(target.shape, dtype=torch.float64)
    ce = LOSSES.build("ce")(logits, target)
    torch.testing.assert_close(LOSSES.build("iou_balanced", eta=0.0)(logits, target, iou=iou), ce)
    x = logits.clone().requires_grad_()
    loss = LOSSES.build("iou_balanced", eta=1.5)(x, target, iou=iou)
    torch.testing.assert_close(loss, ce)  # same value, only the gradient moves
    loss.backward()
    # Naive weights: loop over pixels, then the gradient of sum_V w CE / |V| with w held constant.
    pix = _naive_ce(logits, target)
    t = target.numpy()
    pos = [(b, i, j) for b, i, j in np.ndindex(*t.shape) if t[b, i, j] not in (0, 255)]
    s = sum(pix[q] for q in pos)
    den = sum(float(iou[q]) ** 1.5 * pix[q] for q in pos)
    w = np.where(t != 255, 1.0, 0.0)
    for q in pos:
        w[q] = float(iou[q]) ** 1.5 * s / den
    x2 = logits.clone().requires_grad_()
    per = torch.nn.functional.cross_entropy(x2, target, ignore_index=255, reduction="none")
    ((torch.from_numpy(w) * per).sum() / (target != 255).sum()).backward()
    torch.testing.assert_close(x.grad, x2.grad)
    assert not torch.allclose(x.grad, torch.autograd.grad(LOSSES.build("ce")(x, target), x)[0])


def test_iou_balanced_without_map_says_how_to_pass_it():
    logits, target = _multi()
    with pytest.raises(ValueError, match="iou="):
        LOSSES.build("iou_balanced")(logits, target)


# --- region options -----------------------------------------------------------------------------------------


def _naive_tversky_terms(logits, target, alpha, beta, smooth, per_image):
    """(N or 1, C) Tversky indices and presence by explicit sums over valid pixels."""
    p = torch.softmax(logits, 1).numpy()
    t = target.numpy()
    sets = [[b] for b in range(t.shape[0])] if per_image else [list(range(t.shape[0]))]
    scores, present = [], []
    for images in sets:
        row_s, row_p = [], []
        for c in range(p.shape[1]):
            tp = fp = fn = 0.0
            for b in images:
                for i, j in np.ndindex(*t.shape[1:]):
                    if t[b, i, j] == 255:
                        continue
                    y = float(t[b, i, j] == c)
                    tp += p[b, c, i, j] * y
                    fp += p[b, c, i, j] * (1 - y)
                    fn += (1 - p[b, c, i, j]) * y
            row_s.append((tp + smooth) / (tp + alpha * fp + beta * fn + smooth))
            row_p.append(any((t[b] == c).any() for b in images))
        scores.append(row_s)
        present.append(row_p)
    return np.array(scores), np.array(present)


@pytest.mark.parametrize("absent", ["zero", "keep", "exclude"])
@pytest.mark.parametrize("per_image", [False, True])
def test_focal_tversky_options_match_naive_sums(absent, per_image):
    logits, target = _multi()
    target[0][target[0] == 3] = 1  # class 3 absent from image 0 only
    target[target == 2] = 0  # class 2 absent everywhere
    alpha, beta, gamma, smooth = 0.3, 0.7, 0.75, 0.1
    score, present = _naive_tversky_terms(logits, target, alpha, beta, smooth, per_image)
    loss = (1 - score) ** gamma
    if absent == "zero":
        per_set = (loss * present).mean(1)
    elif absent == "exclude":
        per_set = (loss * present).sum(1) / present.sum(1)
    else:
        per_set = loss.mean(1)
    module = LOSSES.build("tversky", alpha=alpha, beta=beta, gamma=gamma, smooth=smooth, eps=0.0,
                          per_image=per_image, absent=absent)  # fmt: skip
    assert module(logits, target).item() == pytest.approx(float(per_set.mean()), rel=1e-10)


# --- Lovász classes="all" (smp only has "present") ----------------------------------------------------------


def _naive_lovasz_class(errors, fg):
    """Berman et al. Algorithm 1 for one class, written with Python lists."""
    order = sorted(range(len(errors)), key=lambda i: -errors[i])
    gts = sum(fg)
    total, prev, inter, union_extra = 0.0, 0.0, gts, 0.0
    for i in order:
        inter -= fg[i]
        union_extra += 1 - fg[i]
        jac = 1 - inter / (gts + union_extra)
        total += errors[i] * (jac - prev)
        prev = jac
    return total


def test_lovasz_all_classes_matches_naive_algorithm():
    logits, target = _multi(n=2, c=4, h=5, w=6)
    target[target == 3] = 1  # class 3 absent: with classes="all" it still contributes its largest error
    p = torch.softmax(logits, 1).numpy()
    t = target.numpy()
    valid = t != 255
    losses = []
    for c in range(p.shape[1]):
        fg = (t[valid] == c).astype(float).tolist()
        losses.append(_naive_lovasz_class(np.abs(np.array(fg) - p[:, c][valid]).tolist(), fg))
    got = LOSSES.build("lovasz_softmax", classes="all")(logits, target).item()
    assert got == pytest.approx(float(np.mean(losses)), rel=1e-10)


# --- distance maps ------------------------------------------------------------------------------------------


def test_batched_edt_equals_scipy_per_slice():
    rng = np.random.default_rng(0)
    masks = rng.random((3, 2, 9, 11)) > 0.6
    masks[0, 0] = False  # empty: EDT 0 everywhere
    expected = np.stack([[ndimage.distance_transform_edt(m) for m in row] for row in masks])
    np.testing.assert_allclose(edt(masks), expected, rtol=1e-6)  # OpenCV's exact transform works in float32


def test_signed_map_and_field_conventions():
    m = np.zeros((2, 7, 8), bool)
    m[0, 2:5, 2:6] = True
    m[1] = True  # full mask: zero maps
    phi = signed_distance_map(m)
    assert (phi[0][m[0]] <= 0).all() and (phi[0][~m[0]] > 0).all()
    assert phi[0, 2, 3] == 0 and phi[0, 3, 3] == -1  # on the object's boundary / one step inside
    assert phi[0, 0, 3] == 2  # two rows above the object
    assert (phi[1] == 0).all() and (distance_field(m)[1] == 0).all()
    np.testing.assert_allclose(
        distance_field(m)[0], ndimage.distance_transform_edt(m[0]) + ndimage.distance_transform_edt(~m[0]), rtol=1e-6
    )


def test_boundary_and_hd_with_precomputed_maps_equal_computed(tiny_shapes):
    from torch.utils.data import DataLoader

    from segkit.datasets.base import collate_semantic
    from segkit.losses.distance import WithDistanceMaps

    ds = WithDistanceMaps(tiny_shapes("train", 4, 32), num_classes=4, keys=("dist_map", "hd_dist_map"))
    batch = next(iter(DataLoader(ds, batch_size=4, collate_fn=collate_semantic)))
    assert batch["dist_map"].shape == (4, 4, 32, 32) and batch["hd_dist_map"].shape == (4, 4, 32, 32)
    logits = torch.randn(4, 4, 32, 32)
    for name, key in (("boundary", "dist_map"), ("hausdorff_dt", "hd_dist_map")):
        loss = LOSSES.build(name)
        assert loss.extra_inputs == (key,)
        torch.testing.assert_close(loss(logits, batch["mask"], **{key: batch[key]}), loss(logits, batch["mask"]))


def test_trainer_passes_precomputed_maps_to_the_loss(tmp_path, tiny_shapes):
    from torch.utils.data import DataLoader

    from segkit.datasets.base import collate_semantic
    from segkit.engine.trainer import Trainer
    from segkit.losses.distance import BoundaryLoss, WithDistanceMaps

    received = []

    class Spy(BoundaryLoss):
        def forward(self, logits, target, dist_map=None):
            received.append(dist_map)
            return super().forward(logits, target, dist_map)

    ds = WithDistanceMaps(tiny_shapes("train", 4, 32), num_classes=4)
    model = torch.nn.Conv2d(3, 4, 1)
    trainer = Trainer(model, Spy(), ds, None, epochs=1, batch_size=4, out_dir=tmp_path)
    batch = next(iter(DataLoader(ds, batch_size=4, collate_fn=collate_semantic)))
    out = trainer.compute_loss(model(batch["image"]), batch)
    assert received[0] is batch["dist_map"]
    torch.testing.assert_close(out["loss"], BoundaryLoss()(model(batch["image"]), batch["mask"]))
