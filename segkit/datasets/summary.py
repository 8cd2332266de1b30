"""What ``segkit inspect`` says about a dataset: sizes, class shares, suggested class weights and warnings."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from segkit.datasets.subsample import evenly_spaced

__all__ = ["LabelStats", "dataset_warnings", "label_stats", "median_frequency_weights", "summary_text"]


@dataclass
class LabelStats:
    """Label statistics of a dataset split, from the raw (untransformed) masks.

    Attributes:
        pixels: ``(K,)`` int64 pixels of each class.
        images: ``(K,)`` int64 number of images containing each class.
        present_pixels: ``(K,)`` int64 labelled (not ignored) pixels of the images that contain each
            class (the denominator of median-frequency balancing).
        ignored: pixels equal to ``ignore_index`` (or outside ``[0, K)``).
        sizes: ``Counter`` of image sizes ``(H, W)``.
        num_images: images read.
    """

    pixels: np.ndarray
    images: np.ndarray
    present_pixels: np.ndarray
    ignored: int
    sizes: Counter = field(default_factory=Counter)
    num_images: int = 0

    @property
    def total(self) -> int:
        """Every pixel read, labelled or ignored."""
        return int(self.pixels.sum()) + self.ignored


def label_stats(dataset: Any, max_images: int | None = None) -> LabelStats:
    """Read the raw masks of ``dataset`` (``load_raw`` when it has one, else ``dataset[i]["mask"]``).

    Args:
        dataset: a segkit semantic dataset (``num_classes``, ``ignore_index``).
        max_images: read at most this many images, evenly spaced; None reads all.

    Returns:
        The ``LabelStats`` of the images read.
    """
    k = int(dataset.num_classes)
    indices = evenly_spaced(len(dataset), max_images)
    pixels, images, present = (np.zeros(k + 1, np.int64) for _ in range(3))
    sizes: Counter = Counter()
    for i in indices:
        mask = dataset.load_raw(int(i))[1] if hasattr(dataset, "load_raw") else np.asarray(dataset[int(i)]["mask"])
        mask = np.asarray(mask)
        sizes[mask.shape[:2]] += 1
        # Every value outside [0, k) is the ignore bin (index k).
        flat = mask.reshape(-1).astype(np.int64)
        counts = np.bincount(np.where((flat >= 0) & (flat < k), flat, k), minlength=k + 1)
        pixels += counts
        images += counts > 0
        # Ignored pixels carry no class: counting them would lower the frequency of the classes that
        # share images with much ignore (void borders) and so raise their weights.
        present += np.where(counts > 0, flat.size - counts[k], 0)
    return LabelStats(pixels[:k], images[:k], present[:k], int(pixels[k]), sizes, len(indices))


def median_frequency_weights(stats: LabelStats) -> np.ndarray:
    """Class weights by median-frequency balancing (Eigen & Fergus 2015, used by SegNet on CamVid).

    ``freq_c = pixels_c / present_pixels_c`` (pixels of class c over the labelled pixels of the images
    where c appears; ignored pixels count nowhere) and ``w_c = median(freq) / freq_c``, the median over
    the classes that appear; a class that never appears gets weight 0.

    Returns:
        ``(K,)`` float64 weights, e.g. for ``loss: {name: ce, weight: [...]}``.
    """
    seen = stats.present_pixels > 0
    freq = np.divide(stats.pixels, stats.present_pixels, out=np.zeros(len(stats.pixels)), where=seen)
    if not (freq > 0).any():
        return np.zeros(len(freq))
    median = float(np.median(freq[freq > 0]))
    return np.divide(median, freq, out=np.zeros(len(freq)), where=freq > 0)


def dataset_warnings(dataset: Any, stats: LabelStats) -> list[str]:
    """Plain-language warnings about a split: absent or rare classes, much ignored, mixed sizes."""
    out = []
    names = list(dataset.class_names)
    total = max(stats.total, 1)
    absent = [names[c] for c in range(len(names)) if stats.pixels[c] == 0]
    if absent:
        out.append(
            f"{len(absent)} class(es) never appear: {', '.join(absent[:8])}; their IoU is undefined (left out of mIoU)"
        )
    rare = [names[c] for c in range(len(names)) if 0 < stats.pixels[c] < 0.001 * total]
    if rare:
        out.append(f"rare classes (< 0.1% of pixels): {', '.join(rare[:8])}; consider class weights or a dice term")
    if stats.ignored > 0.5 * total:
        out.append(f"{100 * stats.ignored / total:.1f}% of pixels are ignored (ignore_index {dataset.ignore_index})")
    if len(stats.sizes) > 1:
        out.append(
            f"{len(stats.sizes)} different image sizes: batches are padded (mask with ignore_index); train on crops "
            "(transforms: {crop_size: S}) or resize (image_size=S) for speed"
        )
    out.extend(str(w) for w in getattr(getattr(dataset, "encoding", None), "warnings", ()) or ())
    return out


def _size_lines(sizes: Counter, top: int = 6) -> list[str]:
    """The size distribution: the common sizes when sizes repeat, else a histogram of the longer side."""
    heights = np.repeat([h for h, _ in sizes], list(sizes.values()))
    widths = np.repeat([w for _, w in sizes], list(sizes.values()))
    lines = [
        f"sizes: {len(sizes)} distinct; height {heights.min()}..{heights.max()} (median {int(np.median(heights))}), "
        f"width {widths.min()}..{widths.max()} (median {int(np.median(widths))})"
    ]
    common = [(size, count) for size, count in sizes.most_common(top) if count > 1 or len(sizes) <= top]
    if common:
        lines += [f"  {w}x{h}: {count} images" for (h, w), count in common]
        if len(sizes) > len(common):
            lines.append(f"  ... {len(sizes) - len(common)} other sizes")
    else:  # every size differs: a histogram of the longer side is what tells crop or resize choices
        longer = np.maximum(heights, widths)
        counts, edges = np.histogram(longer, bins=min(5, len(np.unique(longer))))
        lines += [f"  longer side {int(a)}..{int(b)}: {c} images" for a, b, c in zip(edges[:-1], edges[1:], counts)]
    return lines


def summary_text(
    dataset: Any,
    stats: LabelStats,
    channel_stats: tuple[np.ndarray, np.ndarray] | None = None,
    markdown: bool = False,
) -> str:
    """The report of ``segkit inspect``: counts, sizes, encoding, class table, weights, statistics, warnings.

    Args:
        dataset: the dataset (``class_names``, ``num_classes``, ``ignore_index``, optional ``encoding``).
        stats: from ``label_stats``.
        channel_stats: per-channel ``(mean, std)`` in raw pixel units, or None.
        markdown: the class table as a Markdown table instead of aligned text.

    Returns:
        Text to print (several lines).
    """
    names = list(dataset.class_names)
    weights = median_frequency_weights(stats)
    total = max(stats.total, 1)
    lines = [
        f"{stats.num_images} images, {stats.total} pixels, {dataset.num_classes} classes, "
        f"ignore_index {dataset.ignore_index}"
    ]
    lines += _size_lines(stats.sizes)
    encoding = getattr(dataset, "encoding", None)
    if encoding is not None and hasattr(encoding, "describe"):
        lines.append(f"encoding: {encoding.describe()}")
    rows = [
        (str(c), names[c], int(stats.pixels[c]), 100.0 * stats.pixels[c] / total, int(stats.images[c]), weights[c])
        for c in range(len(names))
    ]
    if markdown:
        lines += ["", "| id | class | pixels | share | images | weight |", "|---:|---|---:|---:|---:|---:|"]
        lines += [f"| {i} | {n} | {p} | {s:.2f}% | {m} | {w:.3f} |" for i, n, p, s, m, w in rows]
        lines.append(f"| - | ignored | {stats.ignored} | {100.0 * stats.ignored / total:.2f}% | | |")
    else:
        width = max([len(n) for n in names] + [7])
        lines.append(f"{'id':>3}  {'class':<{width}}  {'pixels':>12}  {'share':>7}  {'images':>6}  {'weight':>7}")
        lines += [f"{i:>3}  {n:<{width}}  {p:>12}  {s:>6.2f}%  {m:>6}  {w:>7.3f}" for i, n, p, s, m, w in rows]
        lines.append(f"{'-':>3}  {'ignored':<{width}}  {stats.ignored:>12}  {100.0 * stats.ignored / total:>6.2f}%")
    lines.append("suggested class weights (median frequency): [" + ", ".join(f"{w:.3f}" for w in weights) + "]")
    if channel_stats is not None:
        mean, std = (np.asarray(v, np.float64) for v in channel_stats)
        lines.append("per-channel mean: [" + ", ".join(f"{v:.3f}" for v in mean) + "]")
        lines.append("per-channel std:  [" + ", ".join(f"{v:.3f}" for v in std) + "]")
    for warning in dataset_warnings(dataset, stats):
        lines.append(f"warning: {warning}")
    return "\n".join(lines)
