"""Sliding-window inference with overlap (Gaussian or uniform weights) and flip / multi-scale TTA."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

__all__ = ["window_starts", "window_weights", "sliding_window", "tta_logits"]

LogitsFn = Callable[[torch.Tensor], torch.Tensor]


def window_starts(size: int, window: int, stride: int) -> list[int]:
    """Start offsets of windows of ``window`` pixels covering ``[0, size)`` with step ``stride``.

    The last window is moved back to end exactly at ``size`` (no padding), as MONAI and mmseg do.

    Args:
        size: image extent along one axis.
        window: window extent (clamped to ``size``).
        stride: step between windows (>= 1).

    Returns:
        Sorted, unique start offsets; ``[0]`` when the window covers the whole axis.
    """
    window = min(window, size)
    if window >= size:
        return [0]
    starts = list(range(0, size - window + 1, max(1, stride)))
    if starts[-1] + window < size:
        starts.append(size - window)
    return starts


def window_weights(
    height: int, width: int, mode: str = "gaussian", sigma_scale: float = 0.125, device: torch.device | None = None
) -> torch.Tensor:
    """Per-pixel weight of one window, ``(height, width)`` float32.

    Args:
        height, width: window size.
        mode: "gaussian" (centre pixels count more, which hides seams; sigma = ``sigma_scale`` x size,
            nnU-Net and MONAI's choice) or "uniform" (plain average of overlapping windows).
        sigma_scale: Gaussian sigma as a fraction of the window side.
        device: where the tensor lives.

    Raises:
        ValueError: an unknown ``mode``.
    """
    if mode == "uniform":
        return torch.ones((height, width), device=device)
    if mode != "gaussian":
        raise ValueError(f"window weighting: expected 'gaussian' or 'uniform', got {mode!r}")

    def axis(n: int) -> torch.Tensor:
        x = torch.arange(n, dtype=torch.float32, device=device) - (n - 1) / 2
        return torch.exp(-0.5 * (x / max(sigma_scale * n, 1e-6)) ** 2)

    w = axis(height)[:, None] * axis(width)[None, :]
    # Border pixels of a window must still count a little, or pixels seen only at a border divide by ~0.
    return (w / w.max()).clamp_min(1e-3)


def sliding_window(
    fn: LogitsFn,
    x: torch.Tensor,
    window: int | Sequence[int],
    overlap: float = 0.25,
    mode: str = "gaussian",
    batch_size: int = 4,
) -> torch.Tensor:
    """Run ``fn`` on overlapping windows of ``x`` and blend the logits with per-pixel weights.

    Args:
        fn: maps ``(B, 3, h, w)`` images to ``(B, C, h, w)`` logits.
        x: ``(N, 3, H, W)`` images.
        window: window side, or ``(h, w)``; clamped to the image size.
        overlap: fraction of a window shared with its neighbour, in ``[0, 1)``.
        mode: "gaussian" or "uniform" weighting (see ``window_weights``).
        batch_size: windows per forward pass.

    Returns:
        ``(N, C, H, W)`` weighted mean of the window logits at each pixel.

    Raises:
        ValueError: ``overlap`` outside ``[0, 1)`` or a non-positive window.
    """
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap: expected a fraction in [0, 1), got {overlap}")
    wh, ww = (window, window) if isinstance(window, int) else (int(window[0]), int(window[1]))
    if wh < 1 or ww < 1:
        raise ValueError(f"window: expected a positive size, got {window}")
    n, _, height, width = x.shape
    wh, ww = min(wh, height), min(ww, width)
    ys = window_starts(height, wh, int(wh * (1 - overlap)))
    xs = window_starts(width, ww, int(ww * (1 - overlap)))
    weight = window_weights(wh, ww, mode, device=x.device)
    boxes = [(y, xx) for y in ys for xx in xs]
    out: torch.Tensor | None = None
    norm = torch.zeros((1, 1, height, width), device=x.device)
    for i in range(n):
        for j in range(0, len(boxes), batch_size):
            chunk = boxes[j : j + batch_size]
            crops = torch.stack([x[i, :, y : y + wh, xx : xx + ww] for y, xx in chunk])
            logits = fn(crops).float()
            if out is None:
                out = torch.zeros((n, logits.shape[1], height, width), device=x.device)
            for (y, xx), lg in zip(chunk, logits):
                out[i, :, y : y + wh, xx : xx + ww] += lg * weight
                if i == 0:
                    norm[0, 0, y : y + wh, xx : xx + ww] += weight
    if out is None:
        raise ValueError(f"sliding_window: empty input batch {tuple(x.shape)}")
    return out / norm


def tta_logits(
    fn: LogitsFn,
    x: torch.Tensor,
    flips: Sequence[str] = ("h",),
    scales: Sequence[float] = (1.0,),
) -> torch.Tensor:
    """Average the logits of flipped and rescaled copies of ``x``, each mapped back to ``x``'s frame.

    For every scale ``s`` the image is resized (bilinear) to ``s`` times its size, run through
    ``fn`` as is and once per flip, each result un-flipped and resized back; the mean of all
    ``len(scales) * (1 + len(flips))`` logit maps is returned.

    Args:
        fn: maps ``(N, 3, h, w)`` images to ``(N, C, h, w)`` logits.
        x: ``(N, 3, H, W)`` images.
        flips: any of "h" (left-right) and "v" (up-down).
        scales: resize factors, 1.0 = original size.

    Returns:
        ``(N, C, H, W)`` mean logits.
    """
    dims = {"h": [3], "v": [2]}
    for f in flips:
        if f not in dims:
            raise ValueError(f"flips: expected 'h' or 'v', got {f!r}")
    height, width = x.shape[-2:]
    total: torch.Tensor | None = None
    count = 0
    for s in scales:
        xs = x if s == 1.0 else F.interpolate(x, scale_factor=float(s), mode="bilinear", align_corners=False)
        for flip in [None, *flips]:
            inp = xs if flip is None else xs.flip(dims[flip])
            logits = fn(inp).float()
            if flip is not None:
                logits = logits.flip(dims[flip])
            if logits.shape[-2:] != (height, width):
                logits = F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)
            total = logits if total is None else total + logits
            count += 1
    if total is None:
        raise ValueError("tta_logits: scales must not be empty")
    return total / count


def windowed_logits(forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, owner: object) -> torch.Tensor:
    """``forward(x)`` with the sliding window and test-time augmentation ``owner`` asks for (a ``Predictor`` or an
    ``OnnxPredictor``: its ``window``, ``overlap``, ``weighting``, ``batch_size``, ``tta``, ``flips``, ``scales``).

    Shape:
        ``x`` ``(N, C, H, W)`` normalised images -> logits ``(N, K, H, W)``.
    """
    o: Any = owner
    fn = forward
    if o.window is not None:
        window = o.window

        def fn(t: torch.Tensor) -> torch.Tensor:
            return sliding_window(forward, t, window, o.overlap, o.weighting, o.batch_size)

    return tta_logits(fn, x, o.flips, o.scales) if o.tta else fn(x)
