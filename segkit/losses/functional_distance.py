"""Distance-map losses as pure functions: boundary, Hausdorff-DT, distance-penalised CE, and their maps."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from scipy import ndimage

from segkit.losses.functional import check_binary_inputs, check_multiclass_inputs, per_pixel_ce, probs_and_onehot

__all__ = [
    "boundary_loss",
    "distance_field",
    "distance_penalized_cross_entropy",
    "edt",
    "hausdorff_dt_loss",
    "onehot_target",
    "signed_distance_map",
]


def _edt_slice_scipy(mask: np.ndarray) -> np.ndarray:
    return np.asarray(ndimage.distance_transform_edt(mask))


def _edt_slice() -> Callable[[np.ndarray], np.ndarray]:
    """OpenCV's exact transform (``DIST_MASK_PRECISE``, float32; 2-3x faster than scipy), else scipy's."""
    try:
        import cv2
    except ImportError:  # albumentations brings opencv; keep scipy as the fallback
        return _edt_slice_scipy

    def run(mask: np.ndarray) -> np.ndarray:
        return np.asarray(cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE))

    return run


def edt(masks: torch.Tensor | np.ndarray) -> np.ndarray:
    """Exact Euclidean distance transform of every 2-D slice of ``(..., H, W)`` boolean masks.

    Each foreground pixel gets its distance to the nearest background pixel of the same slice (0 on the
    background), as ``scipy.ndimage.distance_transform_edt``. One call of a C transform (OpenCV's exact
    ``DIST_MASK_PRECISE`` when installed, float32 precision; else scipy) per slice that has both foreground and
    background; empty and full slices (no boundary) are left at 0 without any call. No Python work per pixel.
    (A single scipy 3-D call with a large sampling step between slices is exact too, but measured 6x slower.)

    Returns:
        float64 array of the masks' shape.
    """
    arr = masks.detach().cpu().numpy() if isinstance(masks, torch.Tensor) else np.asarray(masks)
    arr = arr.astype(bool, copy=False)
    shape = arr.shape
    flat = arr.reshape(-1, *shape[-2:])
    out = np.zeros(flat.shape)
    transform = _edt_slice()
    for i in np.flatnonzero(_interface(flat).reshape(-1)):
        out[i] = transform(flat[i])
    return out.reshape(shape)


def _interface(masks: np.ndarray) -> np.ndarray:
    """``True`` for slices that are neither empty nor full (only those have a boundary)."""
    return np.asarray(masks.any(axis=(-2, -1), keepdims=True) & ~masks.all(axis=(-2, -1), keepdims=True))


def onehot_target(target: torch.Tensor, num_classes: int, ignore_index: int = 255) -> np.ndarray:
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
    m = masks.detach().cpu().numpy() if isinstance(masks, torch.Tensor) else np.asarray(masks)
    m = m.astype(bool, copy=False)
    phi = np.where(m, -(edt(m) - 1), edt(~m))
    return np.where(_interface(m), phi, 0).astype(np.float32)


def distance_field(masks: torch.Tensor | np.ndarray) -> np.ndarray:
    """Unsigned distance field ``EDT(m) + EDT(~m)`` of boolean masks ``(..., H, W)`` (Karimi & Salcudean 2019):
    every pixel's distance to the other region. Empty and full masks give 0 everywhere.

    Returns:
        float32 array of the masks' shape.
    """
    m = masks.detach().cpu().numpy() if isinstance(masks, torch.Tensor) else np.asarray(masks)
    m = m.astype(bool, copy=False)
    field = edt(m) + edt(~m)
    return np.where(_interface(m), field, 0).astype(np.float32)


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
            ``WithDistanceMaps``); when None they are computed here with one scipy call for the batch
            (a device-to-host copy of the target on GPU).
        include_background: keep class 0 (default False). Binary mode uses the sigmoid channel alone.

    Returns:
        Scalar tensor; 0 with zero gradient when every pixel is ignored.
    """
    p, _, valid = probs_and_onehot(logits, target, mode, ignore_index)
    k = p.shape[1]
    if dist_map is None:
        dist_map = torch.from_numpy(signed_distance_map(_binary_or_multiclass_masks(target, k, mode, ignore_index)))
    phi = _as_map(dist_map, p, "dist_map").detach()
    sel = _channels(include_background, mode, k)
    prod = (p[:, sel] * phi[:, sel]).sum()
    denom = valid.sum() * (k - sel.start)
    return prod / denom.clamp_min(1)


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
            computed here, with one scipy call for the batch.
        alpha: exponent of the distances (2).
        include_background: keep class 0 (default False). Binary mode uses the sigmoid channel alone.

    Returns:
        Scalar tensor; 0 with zero gradient when every pixel is ignored.
    """
    p, t, valid = probs_and_onehot(logits, target, mode, ignore_index)
    k = p.shape[1]
    sel = _channels(include_background, mode, k)
    if hd_dist_map is None:
        hd_dist_map = torch.from_numpy(distance_field(_binary_or_multiclass_masks(target, k, mode, ignore_index)))
    d_t = _as_map(hd_dist_map, p, "hd_dist_map")[:, sel]
    d_p = torch.from_numpy(distance_field((p[:, sel] > 0.5).cpu().numpy())).to(device=p.device, dtype=p.dtype)
    weight = (d_p**alpha + d_t**alpha) * valid
    prod = ((p[:, sel] - t[:, sel]) ** 2 * weight.detach()).sum()
    return prod / (valid.sum() * (k - sel.start)).clamp_min(1)


def distance_penalized_cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    mode: str = "multiclass",
    ignore_index: int = 255,
) -> torch.Tensor:
    """Distance-map-penalised CE (Caliva et al. 2019): ``mean_V (1 + phi) CE``.

    In each image, for a pixel of class c, ``phi = 1 - d_c / max(d_c)`` where ``d_c`` is the Euclidean distance
    transform of the region of class c (distance to the nearest pixel outside it): largest (1) on the region's
    border, 0 at its deepest point. Ignored pixels count as another class for the transform and are left out of
    the mean; a region without a border (empty or filling the image) gets ``phi = 0``. Binary mode: classes 0
    and 1 of the target.

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
    masks = onehot_target(tgt, k, ignore_index)  # (N, K, H, W)
    d = edt(masks)
    dmax = d.max(axis=(-2, -1), keepdims=True)
    phi_c = np.where(_interface(masks) & masks, 1 - d / np.maximum(dmax, 1e-12), 0).sum(1)
    phi = torch.from_numpy(phi_c).to(device=ce.device, dtype=ce.dtype)
    return ((1 + phi) * ce).sum() / valid.sum().clamp_min(1).to(ce.dtype)
