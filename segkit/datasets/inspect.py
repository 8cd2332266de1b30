"""``segkit inspect``: per-class pixel counts and image count of a dataset split (raw labels, no transforms)."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["class_pixel_counts", "format_counts"]


def class_pixel_counts(dataset: Any) -> tuple[np.ndarray, np.ndarray, int]:
    """Count labelled pixels per class over a file dataset, reading raw labels (no transforms).

    Args:
        dataset: a segkit dataset with ``load_raw`` (``FileDataset``) or any dataset yielding ``mask``.

    Returns:
        ``(pixels, images, ignored)``: ``(num_classes,)`` int64 pixel counts, ``(num_classes,)`` number
        of images containing each class, and the count of ``ignore_index`` pixels.
    """
    k = int(dataset.num_classes)
    pixels = np.zeros(k + 1, np.int64)
    images = np.zeros(k + 1, np.int64)
    for i in range(len(dataset)):
        if hasattr(dataset, "load_raw"):
            _, mask, inst = dataset.load_raw(i)
            if mask is None and inst is not None:
                # Instance datasets: count instance masks' pixels under their labels.
                counts = np.zeros(k + 1, np.int64)
                for m, label in zip(inst["masks"], inst["labels"]):
                    counts[label] += int(np.count_nonzero(m))
                pixels += counts
                images += counts > 0
                continue
        else:
            mask = np.asarray(dataset[i]["mask"])
        flat = np.asarray(mask).reshape(-1).astype(np.int64)
        # Every value outside [0, k) is the ignore bin (index k).
        flat = np.where((flat >= 0) & (flat < k), flat, k)
        counts = np.bincount(flat, minlength=k + 1)
        pixels += counts
        images += counts > 0
    return pixels[:k], images[:k], int(pixels[k])


def format_counts(dataset: Any, pixels: np.ndarray, images: np.ndarray, ignored: int) -> str:
    """Return the table printed by ``segkit inspect``."""
    total = int(pixels.sum()) + ignored
    names = list(dataset.class_names)
    width = max([len(n) for n in names] + [7])
    lines = [
        f"{len(dataset)} images, {total} pixels, {dataset.num_classes} classes, ignore_index {dataset.ignore_index}"
    ]
    lines.append(f"{'id':>3}  {'class':<{width}}  {'pixels':>12}  {'share':>7}  {'images':>6}")
    for i, name in enumerate(names):
        share = 100.0 * pixels[i] / total if total else 0.0
        lines.append(f"{i:>3}  {name:<{width}}  {int(pixels[i]):>12}  {share:>6.2f}%  {int(images[i]):>6}")
    share = 100.0 * ignored / total if total else 0.0
    lines.append(f"{'-':>3}  {'ignored':<{width}}  {ignored:>12}  {share:>6.2f}%")
    return "\n".join(lines)
