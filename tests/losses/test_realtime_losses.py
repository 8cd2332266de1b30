"""DDRNet's and PIDNet's training losses against numpy references written from the papers' definitions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from segkit.losses import LOSSES, build_loss
from segkit.losses.ohem import ohem_ce
from segkit.losses.realtime import DDRNetLoss, PIDNetLoss, ddrnet_loss, pidnet_loss

from ._reference import ohem as numpy_ohem

IGNORE = 255


def _np_ce(x: np.ndarray, t: np.ndarray) -> float:
    valid = t != IGNORE
    if not valid.any():
        return 0.0
    m = x.max(1, keepdims=True)
    logp = x - m - np.log(np.exp(x - m).sum(1, keepdims=True))
    return float(-np.take_along_axis(logp, np.where(valid, t, 0)[:, None], 1)[:, 0][valid].mean())


def _np_boundary(t: np.ndarray, radius: int) -> np.ndarray:
    """A valid pixel with a differently labelled valid pixel in its (2r+1)^2 window: explicit loops."""
    n, h, w = t.shape
    out = np.zeros(t.shape, bool)
    for b in range(n):
        for y in range(h):
            for x in range(w):
                if t[b, y, x] == IGNORE:
                    continue
                win = t[b, max(0, y - radius) : y + radius + 1, max(0, x - radius) : x + radius + 1]
                out[b, y, x] = bool(((win != IGNORE) & (win != t[b, y, x])).any())
    return out


def _np_pidnet(main, p_aux, d, t, thresh, min_kept) -> dict[str, float]:
    """Xu et al. 2023 eq. 9-12 with the official weights (0.4, 20, 1): terms computed one pixel set at a time."""
    valid = t != IGNORE
    edges = _np_boundary(t, 2)
    pos, total = int(edges.sum()), int(valid.sum())
    z = d[:, 0]
    bce = np.logaddexp(0, -z) * edges + np.logaddexp(0, z) * (~edges)  # -log s(z) or -log(1 - s(z))
    weight = np.where(edges, (total - pos) / total, pos / total)
    boundary = float((weight * bce)[valid].sum() / total) if total else 0.0
    prob = 1 / (1 + np.exp(-z))
    bas_t = np.where(prob > 0.8, t, IGNORE)
    return {
        "main": numpy_ohem(main, t, thresh, min_kept),
        "p_aux": 0.4 * _np_ce(p_aux, t),
        "boundary": 20.0 * boundary,
        "bas": numpy_ohem(main, bas_t, thresh, min_kept),
    }


def _inputs(seed: int = 0, n: int = 2, c: int = 3, h: int = 8, w: int = 10):
    g = torch.Generator().manual_seed(seed)
    main = torch.randn(n, c, h, w, generator=g, dtype=torch.float64) * 2
    p_aux = torch.randn(n, c, h, w, generator=g, dtype=torch.float64)
    d = torch.randn(n, 1, h, w, generator=g, dtype=torch.float64) * 3  # some pixels above sigmoid 0.8
    target = torch.zeros(n, h, w, dtype=torch.long)  # regions with borders, not noise
    target[:, :, 4:] = 1
    target[:, 5:, 2:7] = 2
    target[-1, :2, :3] = IGNORE
    return main, p_aux, d, target


@pytest.mark.parametrize(("thresh", "min_kept"), [(0.9, 131_072), (0.5, 10)])
def test_pidnet_loss_matches_numpy_reference(thresh: float, min_kept: int) -> None:
    main, p_aux, d, t = _inputs()
    terms = pidnet_loss((main, p_aux, d), t, thresh=thresh, min_kept=min_kept)
    expected = _np_pidnet(main.numpy(), p_aux.numpy(), d.numpy(), t.numpy(), thresh, min_kept)
    assert set(terms) == set(expected)
    for k in expected:
        assert float(terms[k]) == pytest.approx(expected[k], rel=1e-10, abs=1e-12), k
    assert 0 < float(terms["bas"]) and float(terms["boundary"]) > 0


def test_pidnet_boundary_awareness_follows_the_boundary_head() -> None:
    main, p_aux, _, t = _inputs()
    never = torch.full((2, 1, 8, 10), -10.0, dtype=torch.float64)  # sigmoid < 0.8 everywhere
    always = torch.full((2, 1, 8, 10), 10.0, dtype=torch.float64)
    assert float(pidnet_loss((main, p_aux, never), t)["bas"]) == 0.0
    torch.testing.assert_close(pidnet_loss((main, p_aux, always), t)["bas"], pidnet_loss(main, t)["main"])


def test_ddrnet_loss_is_main_plus_weighted_aux_ohem() -> None:
    main, aux, _, t = _inputs(seed=1)
    terms = ddrnet_loss((main, aux), t, thresh=0.6, min_kept=12)
    assert float(terms["main"]) == pytest.approx(numpy_ohem(main.numpy(), t.numpy(), 0.6, 12), rel=1e-12)
    assert float(terms["aux"]) == pytest.approx(0.4 * numpy_ohem(aux.numpy(), t.numpy(), 0.6, 12), rel=1e-12)
    loss = DDRNetLoss(thresh=0.6, min_kept=12)
    torch.testing.assert_close(loss((main, aux), t), terms["main"] + terms["aux"])
    # Eval-mode output (a tensor): the main term alone.
    torch.testing.assert_close(loss(main, t), terms["main"])


def test_ddrnet_loss_passes_class_weights_to_both_ohem_terms() -> None:
    main, aux, _, t = _inputs(seed=2)
    weight = torch.linspace(0.5, 3.0, main.shape[1], dtype=torch.float64)
    terms = DDRNetLoss(thresh=0.6, min_kept=12, weight=weight.tolist()).double().forward_terms((main, aux), t)
    torch.testing.assert_close(terms["main"], ohem_ce(main, t, 0.6, 12, weight=weight))
    torch.testing.assert_close(terms["aux"], 0.4 * ohem_ce(aux, t, 0.6, 12, weight=weight))
    assert float(terms["main"]) != pytest.approx(numpy_ohem(main.numpy(), t.numpy(), 0.6, 12), rel=1e-3)


def test_pidnet_loss_passes_class_weights_to_its_semantic_terms() -> None:
    main, p_aux, d, t = _inputs(seed=4)
    weight = torch.linspace(0.5, 3.0, main.shape[1], dtype=torch.float64)
    plain = pidnet_loss((main, p_aux, d), t, thresh=0.6, min_kept=12)
    terms = PIDNetLoss(thresh=0.6, min_kept=12, weight=weight.tolist()).double().forward_terms((main, p_aux, d), t)
    torch.testing.assert_close(terms["main"], ohem_ce(main, t, 0.6, 12, weight=weight))
    torch.testing.assert_close(terms["p_aux"], 0.4 * F.cross_entropy(p_aux, t, weight=weight, ignore_index=255))
    torch.testing.assert_close(terms["boundary"], plain["boundary"])  # no classes in the boundary term
    assert float(terms["main"]) != pytest.approx(float(plain["main"]), rel=1e-3)


@pytest.mark.parametrize("name", ["ddrnet_loss", "pidnet_loss"])
def test_gradcheck_all_ignored_and_ignored_pixels(name: str) -> None:
    main, p_aux, d, t = _inputs(n=1, h=7, w=8)
    t[0, 0, 0] = IGNORE
    outputs = (main, p_aux) if name == "ddrnet_loss" else (main, p_aux, d)
    loss = build_loss(name, thresh=0.6, min_kept=8)
    assert getattr(loss, "takes_outputs", False) and LOSSES.get(name) in (DDRNetLoss, PIDNetLoss)
    leaves = tuple(o.clone().requires_grad_() for o in outputs)
    assert torch.autograd.gradcheck(lambda *o: loss(o, t), leaves, fast_mode=True)
    # Ignored pixels: no gradient to any output there.
    value = loss(leaves, t)
    grads = torch.autograd.grad(value, leaves)
    assert all(float(g[..., 0, 0].abs().sum()) == 0.0 for g in grads)
    # Every pixel ignored: 0 (not NaN) with zero gradients.
    ignored = torch.full_like(t, IGNORE)
    value = loss(leaves, ignored)
    assert float(value.detach()) == 0.0
    assert all(float(g.abs().sum()) == 0.0 for g in torch.autograd.grad(value, leaves))


@pytest.mark.parametrize("name", ["ddrnet_loss", "pidnet_loss"])
def test_extreme_and_half_precision_logits_are_finite(name: str) -> None:
    main, p_aux, d, t = _inputs()
    outputs = [torch.sign(o) * 50 for o in ((main, p_aux) if name == "ddrnet_loss" else (main, p_aux, d))]
    leaves = [o.float().requires_grad_() for o in outputs]
    value = build_loss(name)(leaves, t)
    value.backward()
    assert torch.isfinite(value) and all(torch.isfinite(x.grad).all() for x in leaves)
    bf16 = build_loss(name)([o.bfloat16() for o in outputs], t)
    assert bf16.dtype == torch.float32 and torch.isfinite(bf16)


def test_bad_outputs_are_clear_errors() -> None:
    main, p_aux, d, t = _inputs()
    with pytest.raises(ValueError, match="tuple of 3"):
        PIDNetLoss()((main, p_aux), t)
    with pytest.raises(ValueError, match="boundary"):
        PIDNetLoss()((main, p_aux, d[:, :, :4]), t)
    with pytest.raises(ValueError, match="tuple of 2"):
        DDRNetLoss()((main, p_aux, d), t)
    with pytest.raises(ValueError, match="bas_threshold"):
        PIDNetLoss(bas_threshold=1.0)
