"""Distance-map losses as pure functions: boundary, Hausdorff-DT, distance-penalised CE, and their maps."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from scipy import ndimage
from torch.autograd.function import once_differentiable

from segkit.losses.functional import check_binary_inputs, check_multiclass_inputs, per_pixel_ce, probs_and_onehot
from segkit.losses.functional_softmax import _channel_dot, _class_sums, softmax_stats

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
            computed here (exact transforms on the CPU, written straight into the weight map).
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
    labels = target.masked_fill(~valid, 0)
    with torch.no_grad():
        p = _probabilities(logits, valid)
        fields = None if hd_dist_map is None else _as_map(hd_dist_map, logits, "hd_dist_map").cpu().float().numpy()
        maps = _hausdorff_weights(p, target.masked_fill(~valid, -1).cpu().numpy(), fields, sel, alpha)
    total = _SquaredErrorSums.apply(logits, p, labels, *(torch.from_numpy(m).to(p) for m in maps))
    return total / (valid.sum() * (k - sel.start)).clamp_min(1)


def _probabilities(logits: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """``softmax(logits, 1)`` without gradient, 0 on ignored pixels. On the CPU it is written into an array that
    numpy allocates (huge pages: ~1 ms of page faults for 40 MB instead of ~10) and only the ignored pixels
    are zeroed (no full-size pass)."""
    if logits.device.type != "cpu":
        return torch.softmax(logits.detach(), 1).mul_(valid.unsqueeze(1).to(logits.dtype))
    n, k = logits.shape[:2]
    p = torch.from_numpy(np.empty(tuple(logits.shape), _NUMPY_DTYPES.get(logits.dtype, np.float32)))
    p = p.to(logits.dtype)  # no copy for float32 / float64
    torch.softmax(logits.detach(), 1, out=p)
    images, pixels = np.nonzero(~valid.cpu().numpy().reshape(n, -1))
    p.view(n, k, -1)[torch.from_numpy(images), :, torch.from_numpy(pixels)] = 0
    return p


_NUMPY_DTYPES = {torch.float32: np.float32, torch.float64: np.float64}


def _hausdorff_weights(
    p: torch.Tensor, labels: np.ndarray, d_t: np.ndarray | None, sel: slice, alpha: float
) -> tuple[np.ndarray, np.ndarray]:
    """The weight map ``d_p^alpha + d_t^alpha`` of ``hausdorff_dt`` on the kept channels (0 elsewhere) with each
    pixel's label channel moved out into ``w_y`` ``(N, H, W)`` (0 on ignored pixels), one (image, class) slice
    at a time: the prediction's field, its power, the target's and the label split are done while the slice
    is in the cache, instead of ~6 passes over the full-size map.

    ``d_p`` = ``distance_field`` of ``p > 0.5``: the outside transform always (slices with a boundary), the
    inside one only when the mask is not thin (see ``_thin``); ``d_t`` = the precomputed target fields
    ``(N, C, H, W)`` or, when None, ``distance_field`` of the one-hot target computed here.
    """
    n, k, h, w = p.shape
    weight = np.zeros((n, k, h, w), np.float32)
    w_y = np.zeros((n, h, w), np.float32)
    masks = (p[:, sel] > 0.5).cpu().numpy()  # (N, K', H, W), C-contiguous
    flat = masks.reshape(-1, h, w)
    boundary = _interface(flat).reshape(-1)
    thin = np.ones(flat.shape[0], bool)
    thin[boundary] = _thin(flat[boundary])
    if d_t is None:
        d_t = np.zeros((n, k, h, w), np.float32)
        _field_into(_flat_masks(onehot_target(labels, k, -1)[:, sel])[0], d_t[:, sel])
    transform = _edt_slice()
    narrow = labels.astype(np.int16) if k < 2**15 else labels  # compared once per (image, class) slice
    comp = np.empty((h, w), bool)
    scratch = np.empty((h, w), np.float32)
    for i in range(flat.shape[0]):
        img, cls = divmod(i, k - sel.start)
        cls += sel.start
        dst = weight[img, cls]
        if boundary[i]:
            np.logical_not(flat[i], out=comp)
            transform(comp.view(np.uint8), dst)
            if thin[i]:
                dst += flat[i]
            else:
                transform(flat[i].view(np.uint8), scratch)
                dst += scratch
            if alpha == 2:
                dst *= dst
            else:
                np.power(dst, np.float32(alpha), out=dst)
        target_field = d_t[img, cls]
        if alpha == 2:
            np.multiply(target_field, target_field, out=scratch)
        else:
            np.power(target_field, np.float32(alpha), out=scratch, dtype=np.float32)
        dst += scratch
        # sum_c (p_c - t_c)^2 w_c = sum_{c != y} p_c^2 w_c + (1 - p_y)^2 w_y: the label's channel is taken out of
        # the map so neither part is a difference of large sums (no cancellation when p_y is close to 1).
        at_label = narrow[img] == cls
        np.copyto(w_y[img], dst, where=at_label)
        np.copyto(dst, 0, where=at_label)
    return weight, w_y


class _SquaredErrorSums(torch.autograd.Function):
    """Forward: ``sum_{c != y} p_c^2 W_c + sum (1 - p_y)^2 w_y`` for ``p = softmax(x)`` (0 on ignored pixels),
    ``W`` (the loss's own buffer, overwritten with ``p W``) with each pixel's label channel set to 0 and that
    channel's weight in ``w_y``. Backward: the analytic
    softmax backward ``p * (G - sum_c p G)`` with ``G = 2 a p W`` and ``-2 a (1 - p_y) w_y`` at the label,
    written into one array allocated by numpy on the CPU (few page faults)."""

    @staticmethod
    def forward(
        ctx: Any, logits: torch.Tensor, p: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor, w_y: torch.Tensor
    ) -> torch.Tensor:
        p_y = p.gather(1, labels.unsqueeze(1))[:, 0]
        # p W, in place: the loss's own buffer; both the sums (sum_c p_c (p W)_c, no p^2 temporaries) and the
        # backward (G = 2 a p W) use it, and W itself is not needed again.
        pw = weight.mul_(p)
        ctx.save_for_backward(p, labels, pw, w_y, p_y)
        return _class_sums(p, pw, 1, False).sum() + torch.linalg.vecdot((1 - p_y).square_().view(-1), w_y.view(-1))

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_total: torch.Tensor) -> tuple[Any, ...]:
        p, labels, pw, w_y, p_y = ctx.saved_tensors
        if p.device.type == "cpu" and p.dtype in _NUMPY_DTYPES:
            grad = torch.from_numpy(np.empty(tuple(p.shape), _NUMPY_DTYPES[p.dtype]))
        else:
            grad = torch.empty_like(p)
        torch.mul(pw, 2 * grad_total, out=grad)
        at_label = (p_y - 1).mul_(w_y).mul_(2 * grad_total)
        grad.scatter_(1, labels.unsqueeze(1), at_label.unsqueeze(1))
        grad.sub_(_channel_dot(p, grad).unsqueeze(1)).mul_(p)
        return grad, None, None, None, None


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
