"""What ``segkit inspect`` says about an instance dataset: images, sizes, instances and crowd regions per class."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from segkit.datasets.subsample import evenly_spaced

__all__ = ["InstanceStats", "instance_stats", "instance_summary_text"]

# COCO's object size ranges (pycocotools COCOeval areaRng): small < 32^2 <= medium < 96^2 <= large, in pixels.
_SMALL, _LARGE = 32**2, 96**2


@dataclass
class InstanceStats:
    """Instance statistics of a dataset split, from the raw (untransformed) annotations.

    Attributes:
        instances: ``(K,)`` int64 instances of each class (crowd regions not counted).
        crowd: ``(K,)`` int64 crowd regions (``iscrowd=1``) of each class: not training positives.
        images: ``(K,)`` int64 number of images holding an instance of each class.
        sizes_by_area: ``(K, 3)`` int64 instances of each class by COCO size range (small, medium, large).
        empty: images without any instance (crowd regions alone count as none).
        sizes: ``Counter`` of image sizes ``(H, W)``.
        num_images: images read.
    """

    instances: np.ndarray
    crowd: np.ndarray
    images: np.ndarray
    sizes_by_area: np.ndarray
    empty: int = 0
    sizes: Counter = field(default_factory=Counter)
    num_images: int = 0


def _annotations(dataset: Any, index: int) -> tuple[tuple[int, int], list[int], list[int], list[int]]:
    """Image size, labels, crowd flags and mask areas of one sample (raw annotations when the dataset has them)."""
    if hasattr(dataset, "load_raw"):
        image, _, inst = dataset.load_raw(index)
        if isinstance(inst, dict):
            masks = [np.asarray(m) for m in inst["masks"]]
            labels = [int(v) for v in inst["labels"]]
            crowd = [int(v) for v in inst.get("iscrowd", [0] * len(labels))]
            areas = [int(np.count_nonzero(m)) for m in masks]
            keep = [i for i, a in enumerate(areas) if a > 0]  # what the dataset's targets keep
            return (
                (int(image.shape[0]), int(image.shape[1])),
                [labels[i] for i in keep],
                [crowd[i] for i in keep],
                [areas[i] for i in keep],
            )
    sample = dataset[index]
    target = sample["target"]
    n = len(target["labels"])
    crowd_t = target.get("iscrowd")
    masks = target["masks"]
    return (
        (int(masks.shape[-2]), int(masks.shape[-1])),
        [int(v) for v in target["labels"]],
        [int(v) for v in crowd_t] if crowd_t is not None else [0] * n,
        [int(v) for v in masks.reshape(n, -1).count_nonzero(1)] if n else [],
    )


def instance_stats(dataset: Any, max_images: int | None = None) -> InstanceStats:
    """Count the instances of ``dataset`` per class, crowd regions apart, and the images without any.

    Args:
        dataset: a segkit instance dataset (``num_classes``; ``load_raw`` returning the instance dict, or
            samples with a ``target``).
        max_images: read at most this many images, evenly spaced; None reads all.

    Returns:
        The ``InstanceStats`` of the images read.
    """
    k = int(dataset.num_classes)
    indices = evenly_spaced(len(dataset), max_images)
    instances, crowd, images = (np.zeros(k, np.int64) for _ in range(3))
    by_area = np.zeros((k, 3), np.int64)
    sizes: Counter = Counter()
    empty = 0
    for i in indices:
        size, labels, flags, areas = _annotations(dataset, int(i))
        sizes[size] += 1
        seen = set()
        for label, flag, area in zip(labels, flags, areas):
            if not 0 <= label < k:
                raise ValueError(f"{dataset.item_path(int(i))}: instance label {label} outside 0..{k - 1}")
            if flag:
                crowd[label] += 1
                continue
            instances[label] += 1
            by_area[label, 0 if area < _SMALL else 1 if area < _LARGE else 2] += 1
            seen.add(label)
        images[list(seen)] += 1
        empty += not seen
    return InstanceStats(instances, crowd, images, by_area, empty, sizes, len(indices))


def instance_summary_text(dataset: Any, stats: InstanceStats, markdown: bool = False) -> str:
    """The report of ``segkit inspect`` for an instance dataset: counts, sizes, a class table, warnings.

    The class table gives each label its name and, for COCO files, the file's ``category_id`` (labels are
    contiguous, ``1..K`` in category-id order; predictions and checkpoints use the labels).

    Args:
        dataset: the dataset (``class_names``, ``num_classes``; ``cat_to_label`` for COCO files).
        stats: from ``instance_stats``.
        markdown: the class table as a Markdown table instead of aligned text.

    Returns:
        Text to print (several lines).
    """
    from segkit.datasets.summary import _size_lines

    names = list(dataset.class_names)
    cat_of = {label: cat for cat, label in (getattr(dataset, "cat_to_label", None) or {}).items()}
    total, crowd = int(stats.instances.sum()), int(stats.crowd.sum())
    lines = [
        f"{stats.num_images} images, {dataset.num_classes - 1} classes + background, {total} instances"
        + (f" and {crowd} crowd regions (iscrowd=1: not training positives, ignored by COCO AP)" if crowd else "")
        + f"; {stats.empty} images without instances"
    ]
    lines += _size_lines(stats.sizes)
    header = ["label", "class", "category_id", "instances", "small", "medium", "large", "crowd", "images"]
    rows = [
        [
            str(c),
            names[c],
            str(cat_of.get(c, "-")),
            *(str(int(v)) for v in (stats.instances[c], *stats.sizes_by_area[c])),
        ]
        + [str(int(stats.crowd[c])), str(int(stats.images[c]))]
        for c in range(1, len(names))
    ]
    if markdown:
        lines += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
    else:
        widths = [max(len(h), *(len(r[j]) for r in rows)) if rows else len(h) for j, h in enumerate(header)]
        fmt = [(lambda s, w=w: s.ljust(w)) if j == 1 else (lambda s, w=w: s.rjust(w)) for j, w in enumerate(widths)]
        lines.append("  ".join(f(h) for f, h in zip(fmt, header)))
        lines += ["  ".join(f(v) for f, v in zip(fmt, row)) for row in rows]
    lines.append("sizes by COCO's area ranges (mask pixels): small < 32x32 <= medium < 96x96 <= large")
    absent = [names[c] for c in range(1, len(names)) if stats.instances[c] == 0]
    if absent:
        lines.append(
            f"warning: {len(absent)} class(es) have no instance: {', '.join(absent[:8])}"
            + (", ..." if len(absent) > 8 else "")
            + "; their AP is undefined (left out of the mean)"
        )
    if stats.empty:
        lines.append(f"warning: {stats.empty} images have no instance (they train as background only)")
    return "\n".join(lines)
