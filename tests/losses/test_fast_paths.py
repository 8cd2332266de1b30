"""The fast paths of the losses (analytic softmax backward, numpy Lovász sort) against the plain formulas."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from segkit.losses import LOSSES
from segkit.losses import functional_lovasz as fl
from segkit.losses.functional_softmax import softmax_stats


def _plain_stats(logits, labels, valid, weight, power, per_image):
    """The formula softmax_stats implements, left to autograd."""
    p = torch.softmax(logits, 1) * valid.unsqueeze(1)
    p_y = p.gather(1, labels.unsqueeze(1))[:, 0]
    term = p**power if weight is None else p**power * weight
    sums = term.sum((2, 3) if per_image else (0, 2, 3)).reshape(-1, logits.shape[1])
    return p_y, sums


@pytest.mark.parametrize("power", [1, 2])
@pytest.mark.parametrize("with_weight", [False, True])
@pytest.mark.parametrize("per_image", [False, True])
@pytest.mark.parametrize("outputs", ["both", "p_y", "sums"])
def test_softmax_stats_matches_autograd_of_the_formula(power, with_weight, per_image, outputs):
    g = torch.Generator().manual_seed(power + 2 * with_weight + 4 * per_image)
    logits = torch.randn(2, 4, 5, 6, generator=g, dtype=torch.float64)
    target = torch.randint(0, 4, (2, 5, 6), generator=g)
    valid = torch.rand(2, 5, 6, generator=g) > 0.2
    labels = target.masked_fill(~valid, 0)
    weight = torch.rand(2, 4, 5, 6, generator=g, dtype=torch.float64) * 3 if with_weight else None
    # Random upstream gradients for each output (or none for an output the loss does not use).
    g_py = torch.randn(2, 5, 6, generator=g, dtype=torch.float64)
    g_s = torch.randn(2 if per_image else 1, 4, generator=g, dtype=torch.float64)

    def scalar(stats):
        p_y, sums = stats
        total = 0
        if outputs in ("both", "p_y"):
            total = total + (p_y * g_py).sum()
        if outputs in ("both", "sums"):
            total = total + (sums * g_s).sum()
        return total

    x1 = logits.clone().requires_grad_()
    x2 = logits.clone().requires_grad_()
    fast = softmax_stats(x1, labels, valid, weight, power, per_image)
    plain = _plain_stats(x2, labels, valid, weight, power, per_image)
    torch.testing.assert_close(fast[0], plain[0], rtol=0, atol=1e-15)
    torch.testing.assert_close(fast[1], plain[1], rtol=1e-14, atol=1e-14)
    scalar(fast).backward()
    scalar(plain).backward()
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-12, atol=1e-14)
    assert torch.all(x1.grad.permute(1, 0, 2, 3)[:, ~valid] == 0)  # ignored pixels get exactly no gradient
    assert torch.autograd.gradcheck(
        lambda x: scalar(softmax_stats(x, labels, valid, weight, power, per_image)), (x1.detach().requires_grad_(),)
    )


def test_softmax_stats_rejects_other_powers():
    x = torch.randn(1, 2, 3, 3)
    with pytest.raises(ValueError, match="power"):
        softmax_stats(x, torch.zeros(1, 3, 3, dtype=torch.long), torch.ones(1, 3, 3, dtype=torch.bool), power=3)


def _lovasz_pair(logits, target, **kw):
    """Value and gradient of the CPU (numpy) path and of the torch sort-and-gather path on the same input."""
    out = []
    for fn in (fl.lovasz_softmax_loss, fl._lovasz_softmax_torch):
        x = logits.clone().requires_grad_()
        args = (kw.get("classes", "present"), kw.get("per_image", False), 255)
        loss = fn(x, target, **kw) if fn is fl.lovasz_softmax_loss else fn(x, target, *args)
        loss.backward()
        out.append((loss.detach(), x.grad))
    return out


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("per_image", [False, True])
@pytest.mark.parametrize("classes", ["present", "all"])
def test_lovasz_numpy_path_equals_torch_path_with_ties(dtype, per_image, classes):
    g = torch.Generator().manual_seed(3)
    # Logits on a coarse grid: many pixels share a probability, so errors tie within a class, between
    # foreground and background entries (p = 1 - p' ) and at exactly 0 and 1 (saturated +-50 logits).
    logits = (torch.randint(-2, 3, (3, 4, 7, 9), generator=g) * 0.5).to(dtype)
    logits[0, :, :2] = 50 * torch.sign(logits[0, :, :2])
    target = torch.randint(0, 4, (3, 7, 9), generator=g)
    target[1, 2:5] = 255
    target[2] = 255  # an all-ignored image
    target[0][target[0] == 3] = 0  # class 3 absent from image 0
    (v_fast, g_fast), (v_ref, g_ref) = _lovasz_pair(logits, target, classes=classes, per_image=per_image)
    tol = {"rtol": 1e-5, "atol": 1e-6} if dtype == torch.float32 else {"rtol": 1e-12, "atol": 1e-13}
    torch.testing.assert_close(v_fast, v_ref, **tol)
    torch.testing.assert_close(g_fast, g_ref, **tol)
    assert torch.all(g_fast.permute(1, 0, 2, 3)[:, target == 255] == 0)


def test_lovasz_numpy_path_all_ignored_is_zero():
    logits = torch.randn(2, 3, 4, 4)
    target = torch.full((2, 4, 4), 255)
    for per_image in (False, True):
        (v_fast, g_fast), (v_ref, _) = _lovasz_pair(logits, target, per_image=per_image)
        assert v_fast.item() == 0 == v_ref.item() and torch.all(g_fast == 0)


def test_packed_key_sort_is_a_stable_descending_argsort():
    g = np.random.default_rng(0)
    errors = g.integers(0, 4, (3, 50)).astype(np.float32) / 4  # many ties
    errors[0, :5] = 0.0
    fg = g.random((3, 50)) < 0.3
    valid = g.random((3, 50)) < 0.8
    keys = fl._sorted_keys_float32(errors, fg, valid)
    order = ((keys >> np.uint64(1)) & np.uint64(2**32 - 1)).astype(np.int64)
    ranked = np.where(valid, -errors.astype(np.float64), np.inf)
    np.testing.assert_array_equal(order, np.argsort(ranked, axis=1, kind="stable"))
    np.testing.assert_array_equal((keys & np.uint64(1)).astype(bool), np.take_along_axis(fg, order, 1))


def test_lovasz_half_precision_on_cpu_takes_the_torch_path():
    logits, target = torch.randn(2, 3, 5, 6), torch.randint(0, 3, (2, 5, 6))
    got = fl.lovasz_softmax_loss(logits.bfloat16(), target)
    assert got.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), fl.lovasz_softmax_loss(logits, target), rtol=2e-2, atol=2e-2)


def test_double_backward_through_softmax_stats_raises():
    x = torch.randn(1, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    labels, valid = torch.zeros(1, 4, 4, dtype=torch.long), torch.ones(1, 4, 4, dtype=torch.bool)
    (grad,) = torch.autograd.grad(softmax_stats(x, labels, valid)[1].sum() ** 2, x, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable|double backward|differentiable"):
        grad.sum().backward()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("per_image", [False, True])
def test_lovasz_hinge_numpy_path_equals_torch_path_with_ties(dtype, per_image):
    g = torch.Generator().manual_seed(4)
    # Logits on a grid of 0.5: errors 1 - x s tie often, and many are exactly 0 or negative (relu 0).
    logits = (torch.randint(-4, 5, (3, 1, 6, 7), generator=g) * 0.5).to(dtype)
    target = torch.randint(0, 2, (3, 6, 7), generator=g)
    target[1, :3] = 255
    target[2] = 255  # an all-ignored image
    out = []
    for fn in (fl.lovasz_hinge_loss, lambda x, t, per_image: fl._lovasz_hinge_torch(x, t, per_image, 255)):
        x = logits.clone().requires_grad_()
        loss = fn(x, target, per_image=per_image)
        loss.backward()
        out.append((loss.detach(), x.grad))
    (v_fast, g_fast), (v_ref, g_ref) = out
    tol = {"rtol": 1e-5, "atol": 1e-6} if dtype == torch.float32 else {"rtol": 1e-12, "atol": 1e-13}
    torch.testing.assert_close(v_fast, v_ref, **tol)
    torch.testing.assert_close(g_fast, g_ref, **tol)
    assert torch.all(g_fast[:, 0][target == 255] == 0)


@pytest.mark.parametrize(
    "name", ["dice", "jaccard", "sensitivity_specificity", "lovasz", "boundary", "hausdorff_dt", "dist_penalized_ce"]
)
def test_channels_last_logits_give_the_same_loss_and_gradient(name):
    g = torch.Generator().manual_seed(6)
    logits = torch.randn(2, 4, 9, 10, generator=g)
    target = torch.randint(0, 4, (2, 9, 10), generator=g)
    target[0, :2] = 255
    out = []
    for x in (logits.clone(), logits.clone().contiguous(memory_format=torch.channels_last)):
        x.requires_grad_()
        loss = LOSSES.build(name)(x, target)
        loss.backward()
        out.append((loss.detach(), x.grad.contiguous()))
    torch.testing.assert_close(out[0][0], out[1][0], rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(out[0][1], out[1][1], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("per_image", [False, True])
@pytest.mark.parametrize("classes", ["present", "all"])
def test_lovasz_row_wise_float32_path_equals_float64_path(per_image, classes):
    # float32 goes row by row (_lovasz_map_float32, absent classes skipped with "present"), float64 through
    # _lovasz_weights: same permutation, same loss and gradient up to float32 rounding.
    g = torch.Generator().manual_seed(5)
    logits = torch.randn(3, 5, 6, 7, generator=g, dtype=torch.float64)
    target = torch.randint(0, 4, (3, 6, 7), generator=g)  # class 4 absent everywhere
    target[0, :2] = 255
    target[1][target[1] == 2] = 0  # class 2 absent from image 1
    out = []
    for dtype in (torch.float32, torch.float64):
        x = logits.to(dtype).requires_grad_()
        loss = fl.lovasz_softmax_loss(x, target, classes=classes, per_image=per_image)
        loss.backward()
        out.append((loss.detach().double(), x.grad.double()))
    torch.testing.assert_close(out[0][0], out[1][0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out[0][1], out[1][1], rtol=1e-5, atol=1e-6)
