"""Colour a class-index mask with a palette and blend it over the image."""

from __future__ import annotations

import numpy as np

__all__ = ["colorize", "overlay_mask"]


def colorize(mask: np.ndarray, palette: np.ndarray, ignore_index: int = 255) -> np.ndarray:
    """Map a class-index mask to RGB.

    Args:
        mask: ``(H, W)`` integer labels.
        palette: ``(C, 3)`` uint8 colours; labels outside ``[0, C)`` (e.g. ``ignore_index``) are drawn white.
        ignore_index: kept for symmetry with the datasets; any out-of-range label is white.

    Returns:
        ``(H, W, 3)`` uint8.
    """
    palette = np.asarray(palette, dtype=np.uint8)
    lut = np.full((256, 3), 255, dtype=np.uint8)
    lut[: len(palette)] = palette[:256]
    m = np.asarray(mask).astype(np.int64)
    return lut[np.clip(m, 0, 255)]


def overlay_mask(
    image: np.ndarray, mask: np.ndarray, palette: np.ndarray, alpha: float = 0.5, skip_background: bool = True
) -> np.ndarray:
    """Blend the coloured ``mask`` over ``image``.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        mask: ``(H, W)`` integer labels of the same size.
        palette: ``(C, 3)`` uint8 colours.
        alpha: opacity of the mask colour in [0, 1].
        skip_background: leave class-0 pixels unblended.

    Returns:
        ``(H, W, 3)`` uint8.
    """
    image = np.asarray(image, dtype=np.uint8)
    if image.shape[:2] != np.asarray(mask).shape:
        raise ValueError(f"overlay_mask: image {image.shape[:2]} and mask {np.asarray(mask).shape} differ in size")
    colour = colorize(mask, palette).astype(np.float32)
    blend = image.astype(np.float32) * (1 - alpha) + colour * alpha
    if skip_background:
        blend = np.where((np.asarray(mask) == 0)[..., None], image.astype(np.float32), blend)
    return np.clip(blend + 0.5, 0, 255).astype(np.uint8)
