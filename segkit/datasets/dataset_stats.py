"""``segkit inspect``: per-class pixel counts, image count and per-channel statistics of a dataset split (raw files)."""

from __future__ import annotations

from typing import Any

import numpy as np

from segkit.datasets.subsample import evenly_spaced

__all__ = ["channel_stats", "class_pixel_counts", "format_counts"]

_CHUNK = 1 << 20  # pixels per float64 block: bounded memory on large tiles


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


def channel_stats(dataset: Any, max_images: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation of a file dataset's raw images, in raw pixel units.

    These are the ``mean=``/``std=`` a dataset takes (``Normalization``): computed from the images as
    stored (``load_raw``, no transforms), over every pixel of the images used. Sums are float64 and
    taken around the first image's mean, so 16-bit and float data lose no precision.

    Args:
        dataset: a dataset with ``load_raw`` (``FileDataset``), or a ``torch.utils.data.Subset`` of one.
        max_images: read at most this many images, evenly spread over the dataset; None reads all.

    Returns:
        ``(mean, std)``, each ``(C,)`` float64; ``std`` is the population standard deviation.

    Raises:
        ValueError: an empty dataset, or an image whose channel count differs from the first's (named).
        TypeError: the dataset has no ``load_raw``.
    """
    source = getattr(dataset, "dataset", dataset) if hasattr(dataset, "indices") else dataset
    indices = list(getattr(dataset, "indices", range(len(dataset))))
    if not hasattr(source, "load_raw"):
        raise TypeError(f"channel_stats: {type(source).__name__} has no load_raw (a segkit file dataset is needed)")
    if max_images is not None and 0 < max_images < len(indices):
        indices = [indices[i] for i in evenly_spaced(len(indices), max_images)]
    skip = getattr(source, "on_bad_sample", "raise") == "skip"
    shift: np.ndarray | None = None
    total = squares = np.zeros(0)
    count, first = 0, ""
    for index in indices:
        try:
            image = np.asarray(source.load_raw(int(index))[0])
        except ValueError:  # BadSampleError: skipped like the loader skips it, else raised (it names the file)
            if skip:
                continue
            raise
        pixels = image.reshape(-1, image.shape[2] if image.ndim == 3 else 1)
        if shift is None:
            first = _path(source, index)
            shift = pixels.mean(0, dtype=np.float64)
            total, squares = np.zeros_like(shift), np.zeros_like(shift)
        elif pixels.shape[1] != shift.size:
            raise ValueError(
                f"{_path(source, index)}: {pixels.shape[1]} channels, but {first} has {shift.size}; "
                f"every image of a dataset needs the same bands"
            )
        for start in range(0, len(pixels), _CHUNK):
            block = pixels[start : start + _CHUNK].astype(np.float64) - shift
            total += block.sum(0)
            squares += np.einsum("ij,ij->j", block, block)
        count += len(pixels)
    if shift is None or count == 0:
        raise ValueError(f"channel_stats: no readable image in {type(source).__name__}")
    centred = total / count
    return shift + centred, np.sqrt(np.maximum(squares / count - centred**2, 0.0))


def _path(dataset: Any, index: int) -> str:
    return str(dataset.item_path(index)) if hasattr(dataset, "item_path") else f"image {index}"
