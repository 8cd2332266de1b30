"""Semantic pictures: overlays with a legend of class names, image / ground truth / prediction, sample grids."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from segkit.viz.figures import new_figure
from segkit.viz.overlay import colorize, overlay_mask

__all__ = ["display_rgb", "plot_comparison", "plot_overlay", "plot_samples"]


def _legend(ax: Any, masks: Sequence[np.ndarray], palette: np.ndarray, class_names: Sequence[str] | None) -> None:
    from matplotlib.patches import Patch

    labels = np.unique(np.concatenate([np.unique(np.asarray(m)) for m in masks]))
    present = [int(c) for c in labels if 0 <= c < len(palette)]
    names = list(class_names) if class_names is not None else [str(i) for i in range(len(palette))]
    handles = [
        Patch(facecolor=palette[c] / 255.0, edgecolor="black", label=names[c] if c < len(names) else str(c))
        for c in present
    ]
    if handles:
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)


def plot_overlay(
    image: np.ndarray,
    mask: np.ndarray,
    palette: np.ndarray | Sequence[Sequence[int]],
    class_names: Sequence[str] | None = None,
    alpha: float = 0.5,
    title: str | None = None,
) -> Any:
    """Colour overlay of a class mask with a legend naming the classes present.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        mask: ``(H, W)`` class indices.
        palette: ``(C, 3)`` uint8 colours.
        class_names: names per class index (default: the indices).
        alpha: mask opacity.
        title: axes title.

    Returns:
        A matplotlib ``Figure`` (one axes; its legend lists the classes present in ``mask``).
    """
    palette = np.asarray(palette, dtype=np.uint8)
    h, w = np.asarray(mask).shape
    fig = new_figure((max(4.0, 4.0 * w / max(h, 1)) + 1.5, 4.0))
    ax = fig.add_subplot(1, 1, 1)
    ax.imshow(overlay_mask(image, mask, palette, alpha=alpha, skip_background=False))
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    _legend(ax, [mask], palette, class_names)
    return fig


def plot_comparison(
    image: np.ndarray,
    target: np.ndarray | None,
    prediction: np.ndarray,
    palette: np.ndarray | Sequence[Sequence[int]],
    class_names: Sequence[str] | None = None,
    titles: Sequence[str] = ("image", "ground truth", "prediction"),
) -> Any:
    """Image, ground truth and prediction side by side, with one legend of the classes present.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        target: ``(H, W)`` labels, or None (then two panels: image and prediction).
        prediction: ``(H, W)`` labels.
        palette: ``(C, 3)`` uint8 colours; labels outside it (``ignore_index``) are white.
        class_names: names per class index.
        titles: panel titles.

    Returns:
        A matplotlib ``Figure`` with one axes per panel.
    """
    palette = np.asarray(palette, dtype=np.uint8)
    panels: list[tuple[str, np.ndarray]] = [(titles[0], np.asarray(image, dtype=np.uint8))]
    masks = [np.asarray(prediction)]
    if target is not None:
        panels.append((titles[1], colorize(target, palette)))
        masks.insert(0, np.asarray(target))
    panels.append((titles[2], colorize(prediction, palette)))
    fig = new_figure((3.2 * len(panels) + 1.5, 3.4))
    axes = [fig.add_subplot(1, len(panels), i + 1) for i in range(len(panels))]
    for ax, (name, picture) in zip(axes, panels):
        ax.imshow(picture, interpolation="nearest")
        ax.set_title(name)
        ax.set_axis_off()
    _legend(axes[-1], masks, palette, class_names)
    return fig


def display_rgb(image: np.ndarray) -> np.ndarray:
    """An image as ``(H, W, 3)`` uint8 for display: uint8 RGB unchanged; greyscale repeated; other dtypes or
    channel counts show their first three channels, each stretched between its 1st and 99th percentile."""
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.dtype != np.uint8:
        x = arr[..., :3].astype(np.float32)
        lo, hi = np.percentile(x, 1, axis=(0, 1)), np.percentile(x, 99, axis=(0, 1))
        arr = np.clip((x - lo) / np.maximum(hi - lo, 1e-6) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    arr = arr[..., :3]
    return np.ascontiguousarray(np.repeat(arr, 3, axis=2) if arr.shape[2] == 1 else arr)


def plot_samples(
    samples: Sequence[tuple[np.ndarray, np.ndarray, str]],
    palette: np.ndarray | Sequence[Sequence[int]],
    class_names: Sequence[str] | None = None,
    alpha: float = 0.5,
) -> Any:
    """A grid of images with their masks overlaid (what ``segkit inspect`` draws), with one legend.

    Args:
        samples: ``(image, mask, title)`` triples; ``image`` ``(H, W, C)`` any dtype (see ``display_rgb``),
            ``mask`` ``(H, W)`` class indices (``ignore_index`` and other values outside the palette: white).
        palette: ``(C, 3)`` uint8 colours.
        class_names: names per class index.
        alpha: mask opacity.

    Returns:
        A matplotlib ``Figure`` with one axes per sample (up to 4 per row).
    """
    palette = np.asarray(palette, dtype=np.uint8)
    cols = min(4, max(1, len(samples)))
    rows = -(-len(samples) // cols)
    fig = new_figure((3.2 * cols + 1.5, 3.0 * rows))
    axes = [fig.add_subplot(rows, cols, i + 1) for i in range(len(samples))]
    for ax, (image, mask, title) in zip(axes, samples):
        ax.imshow(overlay_mask(display_rgb(image), mask, palette, alpha=alpha))  # class 0 left as photographed
        ax.set_title(title, fontsize=8)
        ax.set_axis_off()
    if axes:
        _legend(axes[-1], [m for _, m, _ in samples], palette, class_names)
    return fig
