"""Cross-entropy's two reductions (torch's mean when no pixel is ignored, sum over our count otherwise) and the
one-pass label check in front of them: same value and gradient as the masked mean, every bad label caught."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from segkit.losses import LOSSES
from segkit.losses.functional import check_multiclass_inputs, cross_entropy

C = 4


def _inputs(ignored: bool, ignore_index: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, C, 6, 5, generator=g, dtype=torch.float64)
    target = torch.randint(0, C, (2, 6, 5), generator=g)
    if ignored:
        target[0, :2] = ignore_index
        target[1, 3, 1:4] = ignore_index
    return logits, target


def _masked_mean(logits, target, weight, ignore_index, label_smoothing):
    """The definition: per-pixel CE (torch's, with its weights and smoothing) summed over valid pixels, divided
    by the summed class weights of the valid pixels (their count without weights); 0 when none is valid."""
    per_pixel = F.cross_entropy(
        logits, target, weight=weight, ignore_index=ignore_index, reduction="none", label_smoothing=label_smoothing
    )
    valid = target != ignore_index
    w = torch.ones(C, dtype=logits.dtype) if weight is None else weight
    denom = w[target.clamp(0, C - 1)][valid].sum()
    return per_pixel[valid].sum() / denom if valid.any() else per_pixel.sum() * 0


@pytest.mark.parametrize("ignored", [False, True])
@pytest.mark.parametrize("ignore_index", [255, 0, -100])  # outside [0, C), a class index, negative
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_ce_is_the_masked_mean_in_every_path(ignored, ignore_index, weighted, label_smoothing):
    logits, target = _inputs(ignored, ignore_index)
    weight = torch.tensor([0.5, 2.0, 1.0, 3.0], dtype=torch.float64) if weighted else None
    x = logits.clone().requires_grad_()
    loss = cross_entropy(x, target, weight, ignore_index, label_smoothing)
    (grad,) = torch.autograd.grad(loss, x)
    y = logits.clone().requires_grad_()
    expected = _masked_mean(y, target, weight, ignore_index, label_smoothing)
    (expected_grad,) = torch.autograd.grad(expected, y)
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(grad, expected_grad)


@pytest.mark.parametrize("ignore_index", [255, 0])
def test_ce_of_an_all_ignored_target_is_zero_with_zero_gradient(ignore_index):
    logits, target = _inputs(False, ignore_index)
    x = logits.clone().requires_grad_()
    loss = cross_entropy(x, torch.full_like(target, ignore_index), ignore_index=ignore_index)
    loss.backward()
    assert loss.item() == 0.0
    assert x.grad is not None and not x.grad.any()


def test_ce_module_in_the_trainers_dtype_and_layout_matches_torch_without_ignored_pixels():
    # The Trainer's case: float32 channels_last logits, every pixel labelled: torch's own mean.
    logits, target = _inputs(False, 255)
    x = logits.float().contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(LOSSES.build("ce")(x, target), F.cross_entropy(x, target, ignore_index=255))


@pytest.mark.parametrize("bad", [-1, C, 254, 256, -100])
@pytest.mark.parametrize("ignored", [False, True])
@pytest.mark.parametrize("ignore_index", [255, 0])
def test_every_out_of_range_label_is_caught(bad, ignored, ignore_index):
    logits, target = _inputs(ignored, ignore_index)
    target[1, 5, 4] = bad  # the last pixel: found wherever it sits
    with pytest.raises(ValueError, match=rf"label {bad} is outside \[0, {C}\) and is not ignore_index={ignore_index}"):
        check_multiclass_inputs(logits, target, ignore_index)
    with pytest.raises(ValueError, match=rf"label {bad} is outside"):
        cross_entropy(logits, target, ignore_index=ignore_index)


@pytest.mark.parametrize("bad", [(-3, 9), (9, -3), (7, -3, 9)])
def test_the_first_bad_label_is_named(bad):
    # The first in reading order: neither the largest ((-3, 9)), nor the smallest ((9, -3)), nor either ((7, ...)).
    logits, target = _inputs(True, 255)
    for (n, y, x), value in zip([(0, 3, 0), (1, 0, 0), (1, 5, 4)], bad):
        target[n, y, x] = value
    with pytest.raises(ValueError, match=rf"label {bad[0]} is outside \[0, {C}\)"):
        check_multiclass_inputs(logits, target, 255)
    with pytest.raises(ValueError, match=rf"label {bad[0]} is outside"):
        cross_entropy(logits, target, ignore_index=255)


@pytest.mark.parametrize("ignore_index", [255, -1, 0])
def test_valid_targets_pass(ignore_index):
    logits, target = _inputs(True, ignore_index)
    check_multiclass_inputs(logits, target, ignore_index)
    check_multiclass_inputs(logits[:0], target[:0], ignore_index)  # an empty batch has no label to check
