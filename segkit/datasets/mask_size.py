"""Masks of another size than their image: found at construction from the headers, resized or refused in one message.

Published sets ship masks saved at a fraction of their photo's size (a people-photo set: 198 of 290 masks at
half size). A mask with its image's aspect ratio is a rescaled copy: resizing it with nearest neighbour restores
the alignment without inventing classes. A mask of another aspect ratio belongs to another picture, or was
cropped; no resize aligns it, so it is refused (or skipped) with the count and the first few files.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from segkit.datasets.bad_samples import BadSampleError
from segkit.datasets.decoding import image_size

__all__ = ["MASK_RESIZE", "SizeScan", "fit_mask", "pairs_message", "same_aspect", "scan_sizes"]

MASK_RESIZE = ("nearest", "error")
Pair = tuple[Path, Path, tuple[int, int], tuple[int, int]]  # image, mask, image (H, W), mask (H, W)


def same_aspect(image_hw: Sequence[int], mask_hw: Sequence[int]) -> bool:
    """Whether a mask of ``mask_hw`` is the image's picture at another scale, within rounding.

    ``(hm, wm) = (hi * s, wi * s)`` up to a pixel of rounding (or truncation) on each side, which is
    ``|hm * wi - wm * hi| < max(hi, wi, hm, wm)``. One side equal and the other not is a crop or a pad,
    never a rescale (off by one column is within rounding of a tiny image, and no resize would align it).

    Args:
        image_hw: the image's ``(H, W)``.
        mask_hw: the mask's ``(H, W)``.

    Returns:
        True when the aspect ratios agree within rounding.
    """
    hi, wi = int(image_hw[0]), int(image_hw[1])
    hm, wm = int(mask_hw[0]), int(mask_hw[1])
    if (hm == hi) != (wm == wi):
        return False
    return abs(hm * wi - wm * hi) < max(hi, wi, hm, wm)


@dataclass
class SizeScan:
    """The pairs whose mask differs in size from the image, from the headers of every file.

    Attributes:
        total: pairs scanned.
        rescaled: pairs whose mask has the image's aspect ratio (another scale).
        mismatched: pairs whose mask has another aspect ratio.
        unreadable: ``(item, reason)`` of pairs whose headers could not be read.
    """

    total: int
    rescaled: list[Pair] = field(default_factory=list)
    mismatched: list[Pair] = field(default_factory=list)
    unreadable: list[tuple[Any, str]] = field(default_factory=list)

    def resize_line(self, name: str) -> str:
        """The one line that says the rescaled masks are resized when loaded."""
        image, mask, hi, hm = self.rescaled[0]
        smaller = sum(m[0] * m[1] < i[0] * i[1] for _, _, i, m in self.rescaled)
        larger = len(self.rescaled) - smaller
        kind = " and ".join(
            part for part in (f"{smaller} smaller" if smaller else "", f"{larger} larger" if larger else "") if part
        )
        return (
            f"{name}: {len(self.rescaled)} of {self.total} masks differ in size from their image with its aspect "
            f"ratio ({kind}; e.g. {mask} is {hm[1]}x{hm[0]} for {image.name} {hi[1]}x{hi[0]}): resized to "
            f"their image with nearest neighbour when loaded (mask_resize='error' refuses them)"
        )


def scan_sizes(items: Sequence[Sequence[Any]]) -> SizeScan:
    """Read the header of every image and mask of ``(image, mask)`` items (no pixel decoded).

    Args:
        items: ``(image path, mask path)`` pairs; missing masks must have been handled before.

    Returns:
        The ``SizeScan``.
    """
    scan = SizeScan(len(items))
    for item in items:
        image, mask = Path(item[0]), Path(item[1])
        try:
            if not image.is_file():
                raise BadSampleError(f"{image}: image file does not exist")
            hi, hm = image_size(image), image_size(mask)
        except BadSampleError as exc:
            scan.unreadable.append((item, str(exc)))
            continue
        if hi != hm:
            (scan.rescaled if same_aspect(hi, hm) else scan.mismatched).append((image, mask, hi, hm))
    return scan


def pairs_message(pairs: Sequence[Pair], total: int, what: str, remedy: str, shown: int = 5) -> str:
    """One error for many pairs: how many of ``total``, the first ``shown``, and the remedy.

    Args:
        pairs: the pairs (image, mask, image size, mask size).
        total: the pairs of the dataset.
        what: what is wrong with them, e.g. "differ in size from their image".
        remedy: what to do.
        shown: how many pairs are named.

    Returns:
        The message.
    """
    listed = "; ".join(f"{m} is {hm[1]}x{hm[0]} for {i.name} {hi[1]}x{hi[0]}" for i, m, hi, hm in pairs[:shown])
    more = f"; and {len(pairs) - shown} more" if len(pairs) > shown else ""
    return f"{len(pairs)} of {total} masks {what}: {listed}{more}. Remedy: {remedy}"


def fit_mask(mask: np.ndarray, image_hw: Sequence[int], mask_path: str | Path, image_path: str | Path) -> np.ndarray:
    """Resize a stored mask of the image's aspect ratio to the image's size with nearest neighbour.

    Nearest neighbour keeps every value one of the stored values (no class invented at an edge); pixel
    centres are aligned (``INTER_NEAREST_EXACT``, as PIL's ``NEAREST``).

    Args:
        mask: ``(h, w)`` or ``(h, w, C)`` stored mask.
        image_hw: the image's ``(H, W)``.
        mask_path, image_path: named in the error.

    Returns:
        ``(H, W)`` or ``(H, W, C)`` mask of the same dtype.

    Raises:
        BadSampleError: the aspect ratios differ (no resize aligns the mask).
    """
    h, w = int(image_hw[0]), int(image_hw[1])
    if not same_aspect((h, w), mask.shape[:2]):
        raise BadSampleError(
            f"{mask_path}: label size {mask.shape[1]}x{mask.shape[0]} differs from image {image_path} ({w}x{h}) "
            "with another aspect ratio: no resize aligns them"
        )
    resized = cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST_EXACT)
    return resized.reshape(h, w, *mask.shape[2:])  # cv2 drops a single channel's axis
