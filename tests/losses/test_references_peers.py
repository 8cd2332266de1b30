"""Losses against installed independent implementations (torch, torchvision, MONAI, smp), conventions converted."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from segkit.losses import LOSSES

from ._cases import inputs

monai_losses = pytest.importorskip("monai.losses")
smp_losses = pytest.importorskip("segmentation_models_pytorch.losses")
tv_ops = pytest.importorskip("torchvision.ops")


def _multi(n=2, c=4, h=8, w=9, seed=0, ignore=True):
    logits, target = inputs("multiclass", n=n, c=c, h=h, w=w, seed=seed)
    if not ignore:
        target[target == 255] = 0
    else:
        target[0, 5, 2:6] = 255
    return logits, target


def _binary(n=2, h=8, w=9, seed=0, ignore=True):
    logits, target = inputs("binary", n=n, h=h, w=w, seed=seed)
    if not ignore:
        target[target == 255] = 0
    return logits, target


# --- cross-entropy ------------------------------------------------------------------------------------------


def test_weighted_ce_matches_torch_weighted_mean():
    logits, target = _multi()
    weight = [0.2, 1.0, 3.0, 0.5]
    expected = F.cross_entropy(logits, target, weight=torch.tensor(weight, dtype=torch.float64), ignore_index=255)
    torch.testing.assert_close(LOSSES.build("weighted_ce", weight=weight)(logits, target), expected)


def test_binary_weighted_ce_matches_torch_pos_weight_on_valid_pixels():
    logits, target = _binary()
    valid = target != 255
    # torch has no ignore_index for BCE: select the valid pixels and take its mean over them.
    expected = F.binary_cross_entropy_with_logits(
        logits[:, 0][valid], target[valid].double(), pos_weight=torch.tensor(3.0, dtype=torch.float64)
    )
    got = LOSSES.build("weighted_ce", mode="binary", pos_weight=3.0)(logits, target.unsqueeze(1))
    torch.testing.assert_close(got, expected)


# --- focal --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_focal_multiclass_matches_monai_summed_over_valid_pixels(gamma):
    logits, target = _multi()
    valid = target != 255
    # MONAI's "mean" divides by pixels x classes (or by pixels with ignore_index); take reduction="none",
    # sum over classes (only the target class is non-zero with a one-hot target) and divide by |V| ourselves.
    # MONAI casts to float32, hence the tolerance.
    ref = monai_losses.FocalLoss(to_onehot_y=True, use_softmax=True, gamma=gamma, reduction="none")
    per = ref(logits, target.masked_fill(~valid, 0).unsqueeze(1)).sum(1)
    expected = (per * valid).sum() / valid.sum()
    got = LOSSES.build("focal", gamma=gamma)(logits, target)
    torch.testing.assert_close(got, expected.double(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("alpha", [0.25, None])
def test_focal_binary_matches_torchvision(alpha):
    logits, target = _binary()
    valid = target != 255
    # torchvision: alpha < 0 means no weighting (segkit: alpha=None); mean over the valid pixels.
    expected = tv_ops.sigmoid_focal_loss(
        logits[:, 0][valid], target[valid].double(), alpha=-1 if alpha is None else alpha, gamma=2.0, reduction="mean"
    )
    torch.testing.assert_close(LOSSES.build("focal", mode="binary", alpha=alpha)(logits, target), expected)


def test_focal_scalar_alpha_is_one_minus_alpha_for_background():
    logits, target = _multi()
    vec = LOSSES.build("focal", alpha=[0.75, 0.25, 0.25, 0.25])(logits, target)
    torch.testing.assert_close(LOSSES.build("focal", alpha=0.25)(logits, target), vec)
    assert not torch.isclose(vec, LOSSES.build("focal")(logits, target))


# --- region -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["dice", "jaccard", "tversky"])
def test_region_losses_match_smp_with_ignore(name):
    logits, target = _multi()
    target[target == 3] = 0  # an absent class: smp zeroes its loss and keeps it in the mean (segkit absent="zero")
    kw = {"alpha": 0.3, "beta": 0.7} if name == "tversky" else {}
    cls = {"dice": smp_losses.DiceLoss, "jaccard": smp_losses.JaccardLoss, "tversky": smp_losses.TverskyLoss}[name]
    # smp clamps the denominator at eps instead of adding it: pass eps=0 to segkit and a tiny eps to smp.
    ref = cls("multiclass", ignore_index=255, smooth=0.0, eps=1e-12, **kw)
    expected = ref(logits, target)
    torch.testing.assert_close(LOSSES.build(name, eps=0.0, **kw)(logits, target), expected)


def test_dice_smoothing_convention_against_smp():
    logits, target = _multi()
    # smp computes Dice as Tversky(0.5, 0.5): (TP + s) / (TP + (FP + FN) / 2 + s) = (2 TP + 2s) / (sum p + sum t + 2s),
    # i.e. the classical form with smoothing 2s: segkit smooth=2 equals smp smooth=1.
    ref = smp_losses.DiceLoss("multiclass", ignore_index=255, smooth=1.0, eps=1e-12)
    torch.testing.assert_close(LOSSES.build("dice", smooth=2.0, eps=0.0)(logits, target), ref(logits, target))
    assert not torch.isclose(LOSSES.build("dice", smooth=1.0, eps=0.0)(logits, target), ref(logits, target))


def test_binary_dice_matches_smp():
    logits, target = _binary()
    ref = smp_losses.DiceLoss("binary", ignore_index=255, smooth=0.0, eps=1e-12)
    torch.testing.assert_close(
        LOSSES.build("dice", mode="binary", eps=0.0)(logits, target), ref(logits, target.unsqueeze(1))
    )


def test_dice_per_image_matches_monai():
    logits, target = _multi(ignore=False)
    target[0][target[0] == 2] = 1  # class 2 absent from image 0: MONAI computes it like any class (absent="keep")
    # MONAI batch=False: per image and class, smoothing 1e-5 on numerator and denominator, no eps; float32 inside.
    ref = monai_losses.DiceLoss(softmax=True, to_onehot_y=True, batch=False, smooth_nr=1e-5, smooth_dr=1e-5)
    got = LOSSES.build("dice", per_image=True, absent="keep", smooth=1e-5, eps=0.0)(logits, target)
    torch.testing.assert_close(got, ref(logits, target.unsqueeze(1)).double(), rtol=1e-5, atol=1e-6)


def test_jaccard_and_tversky_per_image_match_monai():
    logits, target = _multi(ignore=False)
    # MONAI's jaccard is (2I + s) / (2(U - I) + s): segkit's formula with smooth s/2.
    ref = monai_losses.DiceLoss(softmax=True, to_onehot_y=True, jaccard=True, smooth_nr=2e-3, smooth_dr=2e-3)
    got = LOSSES.build("jaccard", per_image=True, absent="keep", smooth=1e-3, eps=0.0)(logits, target)
    torch.testing.assert_close(got, ref(logits, target.unsqueeze(1)).double(), rtol=1e-5, atol=1e-6)
    ref_t = monai_losses.TverskyLoss(
        softmax=True, to_onehot_y=True, alpha=0.3, beta=0.7, smooth_nr=1e-5, smooth_dr=1e-5
    )
    got_t = LOSSES.build("tversky", alpha=0.3, beta=0.7, per_image=True, absent="keep", smooth=1e-5, eps=0.0)
    torch.testing.assert_close(got_t(logits, target), ref_t(logits, target.unsqueeze(1)).double(), rtol=1e-5, atol=1e-6)


# --- Lovász -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("per_image", [False, True])
def test_lovasz_softmax_matches_smp(per_image):
    logits, target = _multi(n=3)
    # smp fails on float64: compare in float32. smp uses classes="present".
    ref = smp_losses.LovaszLoss("multiclass", per_image=per_image, ignore_index=255)
    got = LOSSES.build("lovasz", per_image=per_image)(logits.float(), target)
    torch.testing.assert_close(got, ref(logits.float(), target), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("per_image", [False, True])
def test_lovasz_hinge_matches_smp(per_image):
    logits, target = _binary(n=3)
    ref = smp_losses.LovaszLoss("binary", per_image=per_image, ignore_index=255)
    got = LOSSES.build("lovasz_hinge", per_image=per_image)(logits.float(), target)
    torch.testing.assert_close(got, ref(logits.float(), target.unsqueeze(1)), rtol=1e-5, atol=1e-6)


# --- distance -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("include_background", [False, True])
def test_boundary_matches_monai(include_background):
    logits, target = _multi(ignore=False, h=12, w=13)
    target[1] = 0  # image 1: class 0 fills it (full mask) and the others are absent (empty masks): zero maps
    ref = monai_losses.BoundaryLoss(softmax=True, to_onehot_y=True, include_background=include_background)
    got = LOSSES.build("boundary", include_background=include_background)(logits, target)
    torch.testing.assert_close(got, ref(logits, target.unsqueeze(1)).double(), rtol=1e-5, atol=1e-6)


def test_hausdorff_dt_matches_monai():
    logits, target = _multi(ignore=False, h=12, w=13)
    target[1, :, :7] = 0
    ref = monai_losses.HausdorffDTLoss(softmax=True, to_onehot_y=True, include_background=False, alpha=2.0)
    got = LOSSES.build("hausdorff_dt")(logits, target)
    torch.testing.assert_close(got, ref(logits, target.unsqueeze(1)).double(), rtol=1e-5, atol=1e-5)
