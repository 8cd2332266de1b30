"""Independent values of every registered loss at its registry defaults: numpy float64 and scipy, from the formulas.

Written from the papers' definitions and segkit's documented conventions (ignored pixels left out of every sum,
a set without valid pixels gives 0), never by calling segkit. Used by the contract tests for the edge cases
(absent classes, an all-ignored image) where only finiteness or one of two values used to be checked.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

IGNORE = 255
# segkit's distance transforms are OpenCV's exact ones in float32; everything else is float64.
DISTANCE = ("boundary", "hausdorff_dt", "dist_penalized_ce")


def tolerance(name: str) -> dict[str, float]:
    """``pytest.approx`` tolerances for ``name`` against ``reference``."""
    return {"rel": 1e-6, "abs": 1e-9} if name in DISTANCE else {"rel": 1e-9, "abs": 1e-12}


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1 + np.tanh(x / 2))


def _probs(x: np.ndarray, t: np.ndarray, mode: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(p, y, valid)``: probabilities and one-hot ``(N, K, H, W)`` (K = 1 in binary mode), ``valid (N, H, W)``."""
    valid = t != IGNORE
    if mode == "binary":
        return _sigmoid(x), ((t == 1) & valid)[:, None].astype(float), valid
    k = x.shape[1]
    y = (t[:, None] == np.arange(k).reshape(1, -1, 1, 1)) & valid[:, None]
    return _softmax(x), y.astype(float), valid


def _pixel_ce(x: np.ndarray, t: np.ndarray, mode: str) -> np.ndarray:
    """Per-pixel cross-entropy ``(N, H, W)`` (0 on ignored pixels): ``-log p_y`` or ``log(1 + exp(-z))``."""
    valid = t != IGNORE
    if mode == "binary":
        z = np.where(t == 1, 1.0, -1.0) * x[:, 0]
        return np.where(valid, np.logaddexp(0, -z), 0.0)
    m = x.max(1)
    lse = m + np.log(np.exp(x - m[:, None]).sum(1))
    x_y = np.take_along_axis(x, np.where(valid, t, 0)[:, None], 1)[:, 0]
    return np.where(valid, lse - x_y, 0.0)


def ohem(x: np.ndarray, t: np.ndarray, thresh: float, min_kept: int) -> float:
    """OHEM CE from a sort: the valid pixels with softmax ``p_y < thresh`` or ``p_y`` at most the
    ``min(min_kept, |V|)``-th smallest ``p_y`` (ties kept), their CE averaged; 0 without valid pixels."""
    valid = t != IGNORE
    if not valid.any():
        return 0.0
    p_y = np.take_along_axis(_softmax(x), np.where(valid, t, 0)[:, None], 1)[:, 0][valid]
    bound = np.sort(p_y)[min(min_kept, p_y.size) - 1]
    kept = (p_y < thresh) | (p_y <= bound)
    return float(_pixel_ce(x, t, "multiclass")[valid][kept].mean())


def _mean_valid(values: np.ndarray, valid: np.ndarray) -> float:
    return float(values[valid].sum() / valid.sum()) if valid.any() else 0.0


def _has_border(m: np.ndarray) -> bool:
    return bool(m.any() and not m.all())


def _edt(m: np.ndarray) -> np.ndarray:
    return ndimage.distance_transform_edt(m)


def _signed(m: np.ndarray) -> np.ndarray:
    """Kervadec et al.'s signed distance: distance to the region outside it, ``-(distance - 1)`` inside."""
    if not _has_border(m):
        return np.zeros(m.shape)
    return _edt(~m) * ~m - (_edt(m) - 1) * m


def _field(m: np.ndarray) -> np.ndarray:
    """Karimi & Salcudean's field: every pixel's distance to the other region."""
    return _edt(m) + _edt(~m) if _has_border(m) else np.zeros(m.shape)


def _lovasz(errors: np.ndarray, fg: np.ndarray) -> float:
    """Berman et al. Algorithm 1: errors sorted decreasing, dotted with the increments of the Jaccard loss."""
    order = np.argsort(-errors, kind="stable")
    gts, inter, extra, prev, total = fg.sum(), fg.sum(), 0.0, 0.0, 0.0
    for i in order:
        inter -= fg[i]
        extra += 1 - fg[i]
        jac = 1 - inter / (gts + extra)
        total += errors[i] * (jac - prev)
        prev = jac
    return float(total)


def _region(p, y, valid, score) -> float:
    """Mean over classes of ``1 - score(tp, sum p, sum t)`` over the whole batch; absent classes give 0."""
    v = valid[:, None]
    tp, sp, st = (p * y * v).sum((0, 2, 3)), (p * v).sum((0, 2, 3)), (y * v).sum((0, 2, 3))
    if not valid.any():
        return 0.0
    return float(np.mean(np.where(st > 0, 1 - score(tp, sp, st), 0.0)))


def reference(name: str, mode: str, logits: torch.Tensor, target: torch.Tensor) -> float:
    """The value of ``LOSSES.build(name)`` (with ``mode`` where it takes one) on ``(logits, target)``.

    Args:
        name: a registered loss name (not one that takes raw model outputs).
        mode: "multiclass" or "binary".
        logits: ``(N, K, H, W)`` float.
        target: ``(N, H, W)`` int64 in ``[0, K)`` (binary: {0, 1}) or 255.

    Returns:
        The loss as a Python float.
    """
    x = logits.detach().double().numpy()
    t = target.numpy()
    p, y, valid = _probs(x, t, mode)
    eps = 1e-7
    if name in ("ce", "weighted_ce", "iou_balanced"):  # iou_balanced: the value of CE (only its gradient differs)
        return _mean_valid(_pixel_ce(x, t, mode), valid)
    if name == "ohem_ce":
        return ohem(x, t, 0.7, 100_000)
    if name == "topk_ce":
        values = np.sort(_pixel_ce(x, t, mode)[valid])[::-1]
        return float(values[: max(1, int(np.floor(len(values) * 10 / 100)))].mean()) if len(values) else 0.0
    if name == "focal":
        log_pt = -_pixel_ce(x, t, mode)
        return _mean_valid(-((1 - np.exp(log_pt)) ** 2) * log_pt, valid)
    if name == "dice":
        return _region(p, y, valid, lambda tp, sp, st: 2 * tp / (sp + st + eps))
    if name == "jaccard":
        return _region(p, y, valid, lambda tp, sp, st: tp / (sp + st - tp + eps))
    if name == "tversky":
        return _region(p, y, valid, lambda tp, sp, st: tp / (tp + 0.5 * (sp - tp) + 0.5 * (st - tp) + eps))
    if name == "sensitivity_specificity":
        r, smooth, v = 0.05, 1e-5, valid[:, None]
        sq = (y - p) ** 2
        sens = (sq * y * v).sum((0, 2, 3)) / ((y * v).sum((0, 2, 3)) + smooth)
        spec = (sq * (1 - y) * v).sum((0, 2, 3)) / (((1 - y) * v).sum((0, 2, 3)) + smooth)
        return float(np.mean(r * sens + (1 - r) * spec))
    if name in ("lovasz", "lovasz_softmax"):  # classes="present", the batch as one set
        terms = [_lovasz(np.abs(y[:, c] - p[:, c])[valid], y[:, c][valid]) for c in range(p.shape[1])]
        present = [y[:, c][valid].sum() > 0 for c in range(p.shape[1])]
        return float(np.sum(np.array(terms) * present) / max(1, sum(present)))
    if name == "lovasz_hinge":  # per image, an all-ignored image counted as 0
        per = []
        for b in range(x.shape[0]):
            fg = y[b, 0][valid[b]]
            errors = 1 - x[b, 0][valid[b]] * (2 * fg - 1)
            per.append(_lovasz(np.maximum(errors, 0), fg))
        return float(np.mean(per))
    if name == "dist_penalized_ce":
        phi = np.zeros(t.shape)
        for b in range(t.shape[0]):
            for c in range(2 if mode == "binary" else x.shape[1]):
                region = t[b] == c
                if _has_border(region):
                    d = _edt(region)
                    phi[b][region] = 1 - d[region] / d.max()
        return _mean_valid((1 + phi) * _pixel_ce(x, t, mode), valid)
    kept = range(0 if mode == "binary" else 1, p.shape[1])  # no background class in multiclass mode
    if not valid.any():
        return 0.0
    total = 0.0
    for b in range(x.shape[0]):
        for c in kept:
            m, v = y[b, c] > 0, valid[b]
            if name == "boundary":
                total += (p[b, c] * _signed(m))[v].sum()
            elif name == "hausdorff_dt":
                d_p = _field((p[b, c] * v) > 0.5)
                total += ((p[b, c] - y[b, c]) ** 2 * (d_p**2 + _field(m) ** 2))[v].sum()
            else:
                raise KeyError(f"no reference for loss {name!r}: add one to tests/losses/_reference.py")
    return float(total / (valid.sum() * len(kept)))
