"""The fast distance-map paths (thin-mask shortcut, penalty maps, analytic backward) against scipy and plain formulas."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from segkit.losses import LOSSES
from segkit.losses.functional_distance import (
    _thin,
    _thin_slice,
    distance_field,
    distance_penalty,
    edt,
    signed_distance_map,
)

from ._cases import inputs


def _scipy_edt(masks):
    return np.stack(
        [ndimage.distance_transform_edt(m) if m.any() and not m.all() else np.zeros(m.shape) for m in masks]
    )


def _thin_and_thick_masks():
    """Slices that take the shortcut (every pixel touches the other region) on one side or the other, and not."""
    h, w = 9, 11
    yy, xx = np.mgrid[:h, :w]
    masks = np.zeros((6, h, w), bool)
    masks[0] = (yy + xx) % 2 == 0  # checkerboard: thin on both sides
    masks[1, [1, 4, 7], [2, 9, 5]] = True  # isolated pixels: thin inside, thick outside
    masks[2] = ~masks[1]  # isolated holes: thick inside, thin outside
    masks[3, 4, :] = True  # a line through the image: thin inside (the border is not background)
    masks[4, 2:7, 3:9] = True  # a block: thick on both sides
    masks[5, :, 0] = True  # a line on the image border
    return masks


def test_edt_and_maps_with_thin_masks_equal_scipy():
    masks = _thin_and_thick_masks()
    inside, outside = _scipy_edt(masks), _scipy_edt(~masks)
    np.testing.assert_allclose(edt(masks), inside, rtol=1e-6)
    np.testing.assert_allclose(distance_field(masks), inside + outside, rtol=1e-6)
    np.testing.assert_allclose(signed_distance_map(masks), outside - (inside - 1) * masks, rtol=1e-6, atol=1e-6)


def _naive_penalty(target, num_classes):
    phi = np.zeros(target.shape)
    for b in range(target.shape[0]):
        for c in range(num_classes):
            region = target[b] == c
            if region.any() and not region.all():
                d = ndimage.distance_transform_edt(region)
                phi[b][region] = 1 - d[region] / d.max()
    return phi


def test_distance_penalty_matches_naive_loop():
    _, target = inputs("multiclass", n=3, c=4, h=10, w=11, seed=2)
    target[2] = 1  # one class fills the image: phi 0
    target[0, 3:6, 3:8] = 255
    np.testing.assert_allclose(distance_penalty(target, 4), _naive_penalty(target.numpy(), 4), rtol=1e-6, atol=1e-7)


def test_precomputed_penalty_map_equals_computed_and_comes_from_the_workers(tiny_shapes):
    from torch.utils.data import DataLoader

    from segkit.datasets.base import collate_semantic
    from segkit.losses.distance import WithDistanceMaps

    ds = WithDistanceMaps(tiny_shapes("train", 4, 32), num_classes=4, keys=("penalty_map",))
    batch = next(iter(DataLoader(ds, batch_size=4, collate_fn=collate_semantic)))
    assert batch["penalty_map"].shape == (4, 32, 32)
    loss = LOSSES.build("dist_penalized_ce")
    assert loss.extra_inputs == ("penalty_map",)
    logits = torch.randn(4, 4, 32, 32)
    torch.testing.assert_close(
        loss(logits, batch["mask"], penalty_map=batch["penalty_map"]), loss(logits, batch["mask"])
    )
    with pytest.raises(ValueError, match="penalty_map"):
        loss(logits, batch["mask"], penalty_map=batch["penalty_map"][:, :-1])


def _plain_maps(p, target, c):
    """d_t, d_p of hausdorff_dt and phi of boundary from scipy, per image and class."""
    t = torch.nn.functional.one_hot(target.clamp_max(c - 1), c).permute(0, 3, 1, 2).numpy().astype(bool)
    t &= (target != 255).numpy()[:, None]
    d_t = np.stack([[_field(m) for m in ms] for ms in t])
    d_p = np.stack([[_field(m) for m in ms] for ms in (p > 0.5).numpy()])
    phi = np.stack([[_signed(m) for m in ms] for ms in t])
    return torch.from_numpy(t).double(), torch.from_numpy(d_t), torch.from_numpy(d_p), torch.from_numpy(phi)


def _field(m):
    if not m.any() or m.all():
        return np.zeros(m.shape)
    return ndimage.distance_transform_edt(m) + ndimage.distance_transform_edt(~m)


def _signed(m):
    if not m.any() or m.all():
        return np.zeros(m.shape)
    return ndimage.distance_transform_edt(~m) - (ndimage.distance_transform_edt(m) - 1) * m


@pytest.mark.parametrize("include_background", [False, True])
@pytest.mark.parametrize("alpha", [2.0, 1.5])
def test_hausdorff_dt_value_and_gradient_equal_the_plain_formula(include_background, alpha):
    logits, target = inputs("multiclass", n=2, c=4, h=9, w=10, seed=4)
    target[1, 2:4] = 255
    logits[0, :, :3] *= 30  # saturated pixels: p_y close to 1 where the label wins (no cancellation allowed)
    x1, x2 = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    got = LOSSES.build("hausdorff_dt", alpha=alpha, include_background=include_background)(x1, target)
    valid = (target != 255).double()[:, None]
    p = torch.softmax(x2, 1) * valid
    t, d_t, d_p, _ = _plain_maps(p.detach(), target, 4)
    s = 0 if include_background else 1
    weight = (d_p**alpha + d_t**alpha) * valid
    expected = ((p - t) ** 2 * weight)[:, s:].sum() / (valid.sum() * (4 - s))
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-12)  # OpenCV distances are float32
    got.backward()
    expected.backward()
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("include_background", [False, True])
def test_boundary_value_and_gradient_equal_the_plain_formula(include_background):
    logits, target = inputs("multiclass", n=2, c=4, h=9, w=10, seed=5)
    target[0, 5:, :4] = 255
    x1, x2 = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    got = LOSSES.build("boundary", include_background=include_background)(x1, target)
    valid = (target != 255).double()[:, None]
    p = torch.softmax(x2, 1) * valid
    _, _, _, phi = _plain_maps(p.detach(), target, 4)
    s = 0 if include_background else 1
    expected = (p * phi)[:, s:].sum() / (valid.sum() * (4 - s))
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-12)  # OpenCV distances are float32
    got.backward()
    expected.backward()
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-6, atol=1e-9)


def test_thin_of_one_slice_equals_thin_of_the_stack():
    # OpenCV's erosion (per slice, in hausdorff_dt) and the numpy one agree, image borders included.
    rng = np.random.default_rng(3)
    masks = rng.random((200, 7, 8)) < rng.random((200, 1, 1))
    masks[:5] = False
    masks[5:10] = True
    masks[10, :2, :2] = True  # a 2x2 block in a corner: its pixels touch the border, none the background
    thin = _thin_slice()
    assert [thin(m) for m in masks] == _thin(masks).tolist()
    assert not _thin(masks[10:11])[0]


def test_hausdorff_dt_float32_equals_float64():
    logits, target = inputs("multiclass", n=2, c=5, h=20, w=21, seed=7)
    target[0, :3] = 255
    out = []
    for dtype in (torch.float32, torch.float64):
        x = logits.to(dtype).requires_grad_()
        loss = LOSSES.build("hausdorff_dt", include_background=True)(x, target)
        loss.backward()
        out.append((loss.detach().double(), x.grad.double()))
    torch.testing.assert_close(out[0][0], out[1][0], rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(out[0][1], out[1][1], rtol=1e-5, atol=1e-7)
