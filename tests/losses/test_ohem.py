"""OHEM cross-entropy: the hard-pixel selection against a numpy sort and the reference implementations' rule.

The registry-driven contract (module/function parity, gradcheck, ignore_index, all-ignored, extreme logits)
runs on ``ohem_ce`` from ``test_contract.py``; here, the selection itself at thresholds that make it bite.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from segkit.losses import build_loss
from segkit.losses.ohem import ohem_ce

from ._reference import ohem as numpy_ohem


def _inputs(seed: int = 0, n: int = 2, c: int = 4, h: int = 7, w: int = 9) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, c, h, w, generator=g, dtype=torch.float64) * 2
    target = torch.randint(0, c, (n, h, w), generator=g)
    target[0, :2] = 255
    return logits, target


def _reference_rule(logits: torch.Tensor, target: torch.Tensor, thresh: float, min_kept: int) -> float:
    """HRNet/PIDNet ``OhemCrossEntropy._ohem_forward``, re-derived: sort ``p_y`` of the valid pixels,
    ``threshold = max(sorted[min(min_kept, |V| - 1)], thresh)``, mean CE of the pixels with ``p_y < threshold``."""
    x, t = logits.numpy(), target.numpy()
    valid = t != 255
    e = np.exp(x - x.max(1, keepdims=True))
    p = e / e.sum(1, keepdims=True)
    tt = np.where(valid, t, 0)[:, None]
    p_y = np.take_along_axis(p, tt, 1)[:, 0][valid]
    ce = -np.log(p_y)
    ordered = np.sort(p_y)
    threshold = max(ordered[min(min_kept, p_y.size - 1)], thresh)
    return float(ce[p_y < threshold].mean())


@pytest.mark.parametrize(("thresh", "min_kept"), [(0.7, 10), (0.3, 5), (0.05, 20), (0.9, 40), (0.5, 1)])
def test_matches_numpy_sort(thresh: float, min_kept: int) -> None:
    logits, target = _inputs()
    got = ohem_ce(logits, target, thresh=thresh, min_kept=min_kept)
    assert float(got) == pytest.approx(numpy_ohem(logits.numpy(), target.numpy(), thresh, min_kept), rel=1e-12)


@pytest.mark.parametrize(("thresh", "min_kept"), [(0.7, 10), (0.3, 5), (0.05, 20), (0.9, 40), (0.5, 1)])
def test_matches_reference_implementations_rule_without_ties(thresh: float, min_kept: int) -> None:
    # Random float64 probabilities have no ties and min_kept < |V| (108 valid pixels): the two rules agree.
    logits, target = _inputs(seed=3)
    got = ohem_ce(logits, target, thresh=thresh, min_kept=min_kept)
    assert float(got) == pytest.approx(_reference_rule(logits, target, thresh, min_kept), rel=1e-12)


def test_selection_bites_and_keeps_the_hardest() -> None:
    logits, target = _inputs()
    valid = target != 255
    ce = F.cross_entropy(logits, target, ignore_index=255, reduction="none")[valid]
    # thresh so low that nothing passes it: exactly the min_kept pixels of largest CE (lowest p_y) remain.
    got = ohem_ce(logits, target, thresh=1e-9, min_kept=7)
    torch.testing.assert_close(got, ce.sort(descending=True).values[:7].mean())
    assert got > F.cross_entropy(logits, target, ignore_index=255)


def test_keeps_every_valid_pixel_when_min_kept_exceeds_them() -> None:
    # The reference rule drops the easiest pixel(s) here (p_y < max p_y); segkit keeps all: plain CE.
    logits, target = _inputs()
    torch.testing.assert_close(
        ohem_ce(logits, target, thresh=0.5, min_kept=10**6), F.cross_entropy(logits, target, ignore_index=255)
    )
    # Every p_y equal (uniform logits, 0.25 >= thresh): the reference rule keeps nothing (NaN); segkit keeps
    # all of them: log C.
    flat, zeros = torch.zeros(1, 4, 3, 3, dtype=torch.float64), torch.zeros(1, 3, 3, dtype=torch.long)
    torch.testing.assert_close(ohem_ce(flat, zeros, thresh=0.2), torch.tensor(np.log(4.0), dtype=torch.float64))


def test_gradient_flows_only_through_kept_pixels() -> None:
    logits, target = _inputs(n=1)
    x = logits.clone().requires_grad_()
    ohem_ce(x, target, thresh=1e-9, min_kept=5).backward()
    touched = (x.grad.abs().sum(1) > 0).flatten()
    assert int(touched.sum()) == 5
    assert torch.autograd.gradcheck(lambda z: ohem_ce(z, target, thresh=0.4, min_kept=6), (logits.requires_grad_(),))


def test_registry_name_and_bad_arguments() -> None:
    logits, target = _inputs()
    loss = build_loss("ohem_ce", thresh=0.3, min_kept=5)
    torch.testing.assert_close(loss(logits, target), ohem_ce(logits, target, 0.3, 5))
    with pytest.raises(ValueError, match="thresh"):
        build_loss("ohem_ce", thresh=0.0)
    with pytest.raises(ValueError, match="min_kept"):
        ohem_ce(logits, target, min_kept=0)


@pytest.mark.parametrize(("thresh", "min_kept"), [(0.7, 10), (0.3, 5), (0.9, 40), (1.0, 1)])
def test_class_weights_are_torchs_weighted_mean_over_the_kept_pixels(thresh: float, min_kept: int) -> None:
    # The kept set by a numpy sort (p_y < thresh, or among the min_kept lowest), then torch's weighted
    # cross-entropy over exactly those pixels (the others set to ignore_index).
    logits, target = _inputs(seed=5)
    weight = torch.tensor([0.5, 2.0, 1.0, 4.0], dtype=torch.float64)
    x, t = logits.numpy(), target.numpy()
    valid = t != 255
    e = np.exp(x - x.max(1, keepdims=True))
    p_y = np.take_along_axis(e / e.sum(1, keepdims=True), np.where(valid, t, 0)[:, None], 1)[:, 0]
    kth = np.sort(p_y[valid])[min_kept - 1]
    kept = valid & ((p_y < thresh) | (p_y <= kth))
    expected = F.cross_entropy(logits, torch.from_numpy(np.where(kept, t, 255)), weight=weight, ignore_index=255)
    got = ohem_ce(logits, target, thresh=thresh, min_kept=min_kept, weight=weight)
    assert float(got) == pytest.approx(float(expected), rel=1e-12)
    module = build_loss("ohem_ce", thresh=thresh, min_kept=min_kept, weight=weight.tolist())
    assert float(module(logits.float(), target)) == pytest.approx(float(expected), rel=1e-5)
    ones = ohem_ce(logits, target, thresh=thresh, min_kept=min_kept, weight=torch.ones(4, dtype=torch.float64))
    assert float(ones) == pytest.approx(float(ohem_ce(logits, target, thresh=thresh, min_kept=min_kept)), rel=1e-12)
