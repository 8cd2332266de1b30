"""Distance-map losses as pure functions: boundary, Hausdorff-DT, distance-penalised CE, and their maps."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch.autograd.function import once_differentiable

from segkit.losses.functional import check_binary_inputs, check_multiclass_inputs, per_pixel_ce, probs_and_onehot
from segkit.losses.functional_softmax import softmax_stats

__all__ = [
    "boundary_loss",
    "distance_field",
    "distance_penalized_cross_entropy",
    "edt",
    "hausdorff_dt_loss",
    "onehot_target",
    "distance_penalty",
    "signed_distance_map",
]


def _edt_slice_scipy(mask: np.ndarray, out: np.ndarray) -> None:
    from scipy import ndimage  # here, not at import: scipy adds ~10% to `import segkit`

    out[...] = ndimage.distance_transform_edt(mask)


def _edt_slice() -> Callable[[np.ndarray, np.ndarray], None]:
    """OpenCV's exact transform (``DIST_MASK_PRECISE``, float32; 2-3x faster than scipy), else scipy's; either
    writes the EDT of a ``(H, W)`` uint8 mask into a float32 ``(H, W)`` output."""
    try:
        import cv2
    except ImportError:  # albumentations brings opencv; keep scipy as the fallback
        return _edt_slice_scipy

    def run(mask: np.ndarray, out: np.ndarray) -> None:
        cv2.distanceTransform(mask, cv2.DIST_L2, cv2.DIST_MASK_PRECISE, dst=out)

    return run


def _thin(masks: np.ndarray) -> np.ndarray:
    """``(S,)`` True for slices whose 4-neighbourhood erosion is empty: every pixel of the mask touches the other
    region, so its EDT is exactly the mask itself (1 on it, 0 elsewhere) and no transform is needed. Pixels
    beyond the image border count as inside, as they are not background for the transform either."""
    core = masks.copy()
    core[:, 1:] &= masks[:, :-1]
    core[:, :-1] &= masks[:, 1:]
    core[:, :, 1:] &= masks[:, :, :-1]
    core[:, :, :-1] &= masks[:, :, 1:]
    return np.asarray(~core.any(axis=(1, 2)))


def _thin_slice() -> Callable[[np.ndarray], bool]:
    """``_thin`` of one ``(H, W)`` bool mask: OpenCV's erosion by the 4-neighbourhood cross (its border counts
    as inside, as in ``_thin``; 2x faster than numpy's five passes), else ``_thin``."""
    try:
        import cv2
    except ImportError:
        return lambda mask: bool(_thin(mask[None])[0])
    cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    return lambda mask: cv2.countNonZero(cv2.erode(mask.view(np.uint8), cross)) == 0


def _edt_into(masks: np.ndarray, out: np.ndarray, slices: np.ndarray) -> None:
    """Write the EDT of ``masks[i]`` (``(S, H, W)`` bool, C-contiguous) into ``out[i]`` (float32) for each index
    in ``slices``: one C transform per slice, none for a thin mask (see ``_thin``). Other slices are untouched."""
    if slices.size == 0:
        return
    thin = _thin(masks[slices])
    out[slices[thin]] = masks[slices[thin]]
    transform = _edt_slice()
    as_u8 = masks.view(np.uint8)
    for i in slices[~thin]:
        transform(as_u8[i], out[i])


def _flat_masks(masks: torch.Tensor | np.ndarray) -> tuple[np.ndarray, tuple[int, ...]]:
    arr = masks.detach().cpu().numpy() if isinstance(masks, torch.Tensor) else np.asarray(masks)
    arr = np.ascontiguousarray(arr, dtype=bool)
    return arr.reshape(-1, *arr.shape[-2:]), arr.shape


def _edt32(masks: torch.Tensor | np.ndarray) -> np.ndarray:
    flat, shape = _flat_masks(masks)
    out = np.zeros(flat.shape, np.float32)
    _edt_into(flat, out, np.flatnonzero(_interface(flat).reshape(-1)))
    return out.reshape(shape)


def edt(masks: torch.Tensor | np.ndarray) -> np.ndarray:
    """Exact Euclidean distance transform of every 2-D slice of ``(..., H, W)`` boolean masks.

    Each foreground pixel gets its distance to the nearest background pixel of the same slice (0 on the
    background), as ``scipy.ndimage.distance_transform_edt``. One call of a C transform (OpenCV's exact
    ``DIST_MASK_PRECISE`` when installed, float32 precision; else scipy) per slice that has both foreground and
    background; empty and full slices (no boundary) are left at 0 without any call, and so is a slice in which
    every foreground pixel touches the background (its transform is the mask itself). No Python work per pixel.
    (A single scipy 3-D call with a large sampling step between slices is exact too, but measured 6x slower.)

    Returns:
        float64 array of the masks' shape.
    """
    return _edt32(masks).astype(np.float64)


def _interface(masks: np.ndarray) -> np.ndarray:
    """``True`` for slices that are neither empty nor full (only those have a boundary)."""
    return np.asarray(masks.any(axis=(-2, -1), keepdims=True) & ~masks.all(axis=(-2, -1), keepdims=True))


def onehot_target(target: torch.Tensor | np.ndarray, num_classes: int, ignore_index: int = 255) -> np.ndarray:
    """Boolean one-hot ``(..., C, H, W)`` of integer labels ``(..., H, W)``; ignored pixels belong to no class."""
    t = target.detach().cpu().numpy() if isinstance(target, torch.Tensor) else np.asarray(target)
    classes = np.arange(num_classes).reshape(-1, 1, 1)
    return t[..., None, :, :] == classes


def signed_distance_map(masks: torch.Tensor | np.ndarray) -> np.ndarray:
    """Signed distance map of boolean masks ``(..., H, W)``: positive outside, <= 0 inside, 0 on the boundary.

    ``phi = EDT(outside) * outside - (EDT(inside) - 1) * inside`` (Kervadec et al. 2019); empty and full masks
    give 0 everywhere.

    Returns:
        float32 array of the masks' shape.
    """
    flat, shape = _flat_masks(masks)
    out = np.zeros(shape, np.float32)
    _field_into(flat, out, signed=True)
    return out


def distance_field(masks: torch.Tensor | np.ndarray) -> np.ndarray:
    """Unsigned distance field ``EDT(m) + EDT(~m)`` of boolean masks ``(..., H, W)`` (Karimi & Salcudean 2019):
    every pixel's distance to the other region. Empty and full masks give 0 everywhere.

    Returns:
        float32 array of the masks' shape.
    """
    flat, shape = _flat_masks(masks)
    out = np.zeros(shape, np.float32)
    _field_into(flat, out)
    return out


def _field_into(flat: np.ndarray, out: np.ndarray, signed: bool = False) -> None:
    """Write the ``distance_field`` (or with ``signed`` the ``signed_distance_map``) of ``(S, H, W)`` C-contiguous
    masks into the zero-initialised ``out`` ``(..., H, W)`` float32 (S slices in C order, each ``(H, W)`` slice
    of ``out`` C-contiguous, e.g. channels of a larger buffer), without any full-size temporary: ``EDT(~m)``
    is written straight into ``out``, then the field adds ``EDT(m)`` and the signed map subtracts
    ``EDT(m) - 1`` (nothing to do for a thin mask, see ``_thin``). Slices without a boundary stay 0."""
    slices = np.flatnonzero(_interface(flat).reshape(-1))
    if slices.size == 0:
        return
    comp = ~flat
    thin = _thin(flat[slices])
    transform = _edt_slice()
    scratch = np.empty(flat.shape[1:], np.float32)
    lead = out.shape[:-2]
    for i, is_thin in zip(slices, thin):
        dst = out[np.unravel_index(i, lead)]
        transform(comp[i].view(np.uint8), dst)
        if is_thin:
            if not signed:
                dst += flat[i]
            continue
        transform(flat[i].view(np.uint8), scratch)
        if signed:
            scratch -= flat[i]
            dst -= scratch
        else:
            dst += scratch


def distance_penalty(target: torch.Tensor | np.ndarray, num_classes: int, ignore_index: int = 255) -> np.ndarray:
    """The ``phi`` of ``dist_penalized_ce`` for integer labels ``(..., H, W)``, summed over classes.

    For a pixel of class c, ``phi = 1 - d_c / max(d_c)`` with ``d_c`` the EDT of the class-c region of its image
    (ignored pixels belong to no region); 0 for a region without a border and on ignored pixels. Only the
    inside transform of each class is needed; the sum over classes is one small matmul.

    Returns:
        float32 array ``(..., H, W)``.
    """
    t = target.detach().cpu().numpy() if isinstance(target, torch.Tensor) else np.asarray(target)
    masks = onehot_target(t, num_classes, ignore_index)  # (..., K, H, W)
    lead, (h, w) = masks.shape[:-3], masks.shape[-2:]
    flat, _ = _flat_masks(masks)
    inter = _interface(flat).reshape(-1)
    d = np.zeros(flat.shape, np.float32)
    _edt_into(flat, d, np.flatnonzero(inter))
    dmax = d.max(axis=(1, 2))
    inv = np.where(inter & (dmax > 0), 1 / np.maximum(dmax, 1e-12), 0).astype(np.float32)
    images = int(np.prod(lead))
    scaled = torch.matmul(
        torch.from_numpy(inv).reshape(images, 1, num_classes), torch.from_numpy(d).reshape(images, num_classes, -1)
    )
    # Each pixel lies in at most one region: phi = [its region has a border] - d / dmax of that region.
    has_border = inter.reshape(images, num_classes)
    labels = t.reshape(images, -1)
    inside = (labels >= 0) & (labels < num_classes) & (labels != ignore_index)
    border = np.take_along_axis(has_border, np.where(inside, labels, 0), 1) & inside
    return (border - scaled.reshape(images, -1).numpy()).astype(np.float32).reshape(*lead, h, w)


def _channels(include_background: bool, mode: str, num_channels: int) -> slice:
    return slice(0 if include_background or mode == "binary" else 1, num_channels)


def _binary_or_multiclass_masks(target: torch.Tensor, k: int, mode: str, ignore_index: int) -> np.ndarray:
    if mode == "binary":
        t = target[:, 0] if target.dim() == 4 else target
        return (t == 1).unsqueeze(1).cpu().numpy()
    return onehot_target(target, k, ignore_index)


def _as_map(value: torch.Tensor | np.ndarray, like: torch.Tensor, name: str) -> torch.Tensor:
    out = torch.as_tensor(value).to(device=like.device, dtype=like.dtype)
    if out.shape != like.shape:
        raise ValueError(f"{name}: expected shape {tuple(like.shape)} (one map per class), got {tuple(out.shape)}")
    return out


def boundary_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    dist_map: torch.Tensor | None = None,
    include_background: bool = False,
    mode: str = "multiclass",
    ignore_index: int = 255,
) -> torch.Tensor:
    """Boundary loss (Kervadec et al. 2019): mean over (image, class, valid pixel) of ``p_k * phi_k``.

    ``phi`` is the ``signed_distance_map`` of the one-hot target (ignored pixels belong to no class), a constant.

    Args:
        dist_map: optional precomputed ``(N, C, H, W)`` signed maps (all C classes, e.g. from
            ``WithDistanceMaps``); when None the kept classes' maps are computed here (exact transforms on the
            CPU; a device-to-host copy of the target on GPU).
        include_background: keep class 0 (default False). Binary mode uses the sigmoid channel alone.

    Returns:
        Scalar tensor; 0 with zero gradient when every pixel is ignored.
    """
    if mode == "binary":
        p, _, valid = probs_and_onehot(logits, target, mode, ignore_index)
        if dist_map is None:
            dist_map = torch.from_numpy(signed_distance_map(_binary_or_multiclass_masks(target, 1, mode, ignore_index)))
        phi = _as_map(dist_map, p, "dist_map").detach()
        return (p * phi).sum() / valid.sum().clamp_min(1)
    check_multiclass_inputs(logits, target, ignore_index)
    k = logits.shape[1]
    valid = target != ignore_index
    sel = _channels(include_background, mode, k)
    if dist_map is None:  # only the kept channels: the others are multiplied by 0
        maps = np.zeros(logits.shape, np.float32)
        _field_into(_flat_masks(onehot_target(target, k, ignore_index)[:, sel])[0], maps[:, sel], signed=True)
        dist_map = torch.from_numpy(maps)
    phi = _as_map(dist_map, logits, "dist_map")
    # sum p * phi over the kept channels; softmax_stats gives it per class with the analytic softmax backward.
    _, sums = softmax_stats(logits, target.masked_fill(~valid, 0), valid, weight=phi)
    denom = valid.sum() * (k - sel.start)
    return sums[0, sel].sum() / denom.clamp_min(1)


def hausdorff_dt_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    hd_dist_map: torch.Tensor | None = None,
    alpha: float = 2.0,
    include_background: bool = False,
    mode: str = "multiclass",
    ignore_index: int = 255,
) -> torch.Tensor:
    """Hausdorff-distance loss from distance transforms (HD-DT, Karimi & Salcudean 2019).

    ``mean[(p - t)^2 (d_p^alpha + d_t^alpha)]`` over (image, class, valid pixel), where ``d_t`` is the
    ``distance_field`` of the one-hot target and ``d_p`` that of the prediction thresholded at ``p > 0.5`` per
    channel; both are constants.

    Args:
        hd_dist_map: optional precomputed ``(N, C, H, W)`` target fields ``d_t`` (e.g. from
            ``WithDistanceMaps(..., keys=("hd_dist_map",))``); ``d_p`` depends on the prediction and is always
            computed here (exact transforms on the CPU; the value and the gradient are computed in the forward,
            one image and class at a time, and the backward only scales the gradient).
        alpha: exponent of the distances (2).
        include_background: keep class 0 (default False). Binary mode uses the sigmoid channel alone.

    Returns:
        Scalar tensor; 0 with zero gradient when every pixel is ignored.
    """
    if mode == "binary":
        p, t, valid = probs_and_onehot(logits, target, mode, ignore_index)
        if hd_dist_map is None:
            hd_dist_map = torch.from_numpy(distance_field(_binary_or_multiclass_masks(target, 1, mode, ignore_index)))
        d_t = _as_map(hd_dist_map, p, "hd_dist_map")
        d_p = torch.from_numpy(distance_field((p > 0.5).cpu().numpy())).to(device=p.device, dtype=p.dtype)
        weight = (d_p**alpha + d_t**alpha) * valid
        return ((p - t) ** 2 * weight.detach()).sum() / valid.sum().clamp_min(1)
    check_multiclass_inputs(logits, target, ignore_index)
    n, k, h, w = logits.shape
    sel = _channels(include_background, mode, k)
    valid = target != ignore_index
    with torch.no_grad():
        fields = None if hd_dist_map is None else _as_map(hd_dist_map, logits, "hd_dist_map").cpu().float().numpy()
        labels = target.masked_fill(~valid, -1).cpu().numpy()
        total, grad = _hausdorff_value_and_gradient(logits.detach(), labels, fields, sel, alpha)
    return _Precomputed.apply(logits, total, grad) / (valid.sum() * (k - sel.start)).clamp_min(1)


_NUMPY_DTYPES = {torch.float32: np.float32, torch.float64: np.float64}


def _hausdorff_value_and_gradient(
    logits: torch.Tensor, labels: np.ndarray, d_t: np.ndarray | None, sel: slice, alpha: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """``sum (p - t)^2 W`` over the kept channels and the valid pixels, with ``W = d_p^alpha + d_t^alpha`` and
    ``p = softmax(logits)`` (0 on ignored pixels, whose ``labels`` are -1), and half its gradient with respect to
    the logits.

    One image at a time, and in it one kept channel at a time, while the slice is in the cache: the image's ``p``
    (on the CPU a softmax into one reused buffer), the prediction's field, ``W``, ``e = p - t`` and ``e W``
    (written into the gradient's buffer), the sum ``e . e W`` and per pixel ``r = sum_c p_c e_c W_c``; then the
    analytic softmax backward in place, ``p_c (e_c W_c - r)`` (0 on the channels left out: ``-p_c r``), which is
    ``p * (G - sum_c p G) / 2`` for ``G = dL/dp = 2 e W``.

    ``d_p`` = ``distance_field`` of ``p > 0.5``: the outside transform on slices with a boundary, the inside one
    only when the mask is not thin (see ``_thin``); ``d_t`` = the precomputed target fields ``(N, C, H, W)`` or,
    when None, ``distance_field`` of the one-hot target computed here. ``W`` is float32 (the transforms' type);
    the rest float64 for float64 logits, else float32. On a GPU ``p`` is computed there and copied to the host,
    where the transforms run.

    Returns:
        The sum (a 0-dim tensor) and half the gradient ``(N, C, H, W)``, with the logits' dtype and device.
    """
    n, k, h, w = logits.shape
    dtype = np.float64 if logits.dtype == torch.float64 else np.float32
    as_dtype = torch.float64 if dtype == np.float64 else torch.float32
    probs = None if logits.device.type == "cpu" else torch.softmax(logits.to(as_dtype), 1).cpu().numpy()
    if d_t is None:
        d_t = np.zeros((n, k, h, w), np.float32)
        _field_into(_flat_masks(onehot_target(labels, k, -1)[:, sel])[0], d_t[:, sel])
    codes = labels.reshape(n, -1).astype(np.int16 if k < 2**15 else np.int64)
    grad = np.empty((n, k, h * w), dtype)  # numpy: huge pages, few page faults
    p = np.empty((k, h * w), dtype)
    r, err = np.empty(h * w, dtype), np.empty(h * w, dtype)
    mask, comp, is_label = np.empty((h, w), bool), np.empty((h, w), bool), np.empty(h * w, bool)
    field = np.empty((h, w), np.float32)  # W of one slice
    scratch = np.empty((h, w), np.float32)
    transform, thin = _edt_slice(), _thin_slice()
    total = 0.0
    for img in range(n):
        if probs is None:
            torch.softmax(logits[img].reshape(k, -1).to(as_dtype), 0, out=torch.from_numpy(p))
        else:
            p[...] = probs[img].reshape(k, -1)
        p[:, np.flatnonzero(codes[img] < 0)] = 0
        r[...] = 0
        for cls in range(sel.start, k):
            np.greater(p[cls].reshape(h, w), 0.5, out=mask)
            if mask.any() and not mask.all():  # d_p = 0 for an empty or full mask
                np.logical_not(mask, out=comp)
                transform(comp.view(np.uint8), field)
                if thin(mask):
                    field += mask
                else:
                    transform(mask.view(np.uint8), scratch)
                    field += scratch
                _power(field, alpha, field)
                field += _power(d_t[img, cls], alpha, scratch)
            else:
                _power(d_t[img, cls], alpha, field)
            np.equal(codes[img], cls, out=is_label)
            np.subtract(p[cls], is_label, out=err)  # e = p - t: no difference of large sums
            dst = grad[img, cls]
            np.multiply(err, field.reshape(-1), out=dst)  # e W
            total += float(np.dot(err, dst))
            np.multiply(p[cls], dst, out=err)
            r += err
        for cls in range(k):
            dst = grad[img, cls]
            if cls < sel.start:
                np.multiply(p[cls], r, out=dst)
                np.negative(dst, out=dst)
            else:
                dst -= r
                dst *= p[cls]
    half = torch.from_numpy(grad).view(n, k, h, w).to(device=logits.device, dtype=logits.dtype)
    return torch.tensor(total, dtype=logits.dtype, device=logits.device), half


def _power(x: np.ndarray, alpha: float, out: np.ndarray) -> np.ndarray:
    if alpha == 2:
        return np.multiply(x, x, out=out)
    return np.power(x, np.float32(alpha), out=out, dtype=np.float32)


class _Precomputed(torch.autograd.Function):
    """A value and half its gradient with respect to ``logits``, computed together: the backward only scales
    it (into a fresh array allocated by numpy on the CPU: few page faults)."""

    @staticmethod
    def forward(ctx: Any, logits: torch.Tensor, value: torch.Tensor, half_grad: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(half_grad)
        return value

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_value: torch.Tensor) -> tuple[Any, ...]:
        (half_grad,) = ctx.saved_tensors
        if half_grad.device.type == "cpu" and half_grad.dtype in _NUMPY_DTYPES:
            out = torch.from_numpy(np.empty(tuple(half_grad.shape), _NUMPY_DTYPES[half_grad.dtype]))
            return torch.mul(half_grad, 2 * grad_value, out=out), None, None
        return half_grad * (2 * grad_value), None, None


def distance_penalized_cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    mode: str = "multiclass",
    ignore_index: int = 255,
    penalty_map: torch.Tensor | None = None,
) -> torch.Tensor:
    """Distance-map-penalised CE (Caliva et al. 2019): ``mean_V (1 + phi) CE``.

    In each image, for a pixel of class c, ``phi = 1 - d_c / max(d_c)`` where ``d_c`` is the Euclidean distance
    transform of the region of class c (distance to the nearest pixel outside it): largest (1) on the region's
    border, 0 at its deepest point. Ignored pixels count as another class for the transform and are left out of
    the mean; a region without a border (empty or filling the image) gets ``phi = 0``. Binary mode: classes 0
    and 1 of the target.

    Args:
        penalty_map: optional precomputed ``phi`` ``(N, H, W)`` (``distance_penalty`` of the target, e.g. from
            ``WithDistanceMaps(..., keys=("penalty_map",))``); when None it is computed here (one exact
            transform per image and class present, on the CPU).

    Returns:
        Scalar tensor; 0 with zero gradient when every pixel is ignored.
    """
    ce, valid = per_pixel_ce(logits, target, mode, ignore_index)
    if mode == "binary":
        tgt = check_binary_inputs(logits, target, ignore_index)
        k = 2
    else:
        check_multiclass_inputs(logits, target, ignore_index)
        tgt, k = target, logits.shape[1]
    if penalty_map is None:
        penalty_map = torch.from_numpy(distance_penalty(tgt, k, ignore_index))
    phi = torch.as_tensor(penalty_map).to(device=ce.device, dtype=ce.dtype)
    if phi.dim() == 4 and phi.shape[1] == 1:
        phi = phi[:, 0]
    if phi.shape != ce.shape:
        raise ValueError(f"penalty_map: expected shape {tuple(ce.shape)} (one map per image), got {tuple(phi.shape)}")
    return ((1 + phi) * ce).sum() / valid.sum().clamp_min(1).to(ce.dtype)
