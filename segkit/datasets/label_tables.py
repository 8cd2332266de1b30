"""Stored label values to class indices: a 256-entry lookup table with validity, and colour-coded masks."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from segkit.datasets.bad_samples import BadSampleError

__all__ = ["LabelTable", "rgb_to_index"]


class LabelTable:
    """A 256-entry lookup table from stored label values to class indices, with validity.

    Args:
        num_classes: valid outputs are ``[0, num_classes)`` and ``ignore_index``.
        mapping: stored value -> class index (or ``ignore_index``); None is the identity on
            ``[0, num_classes)``.
        ignore_index: the value of ignored pixels; a stored ``ignore_index`` stays ignored.
    """

    def __init__(self, num_classes: int, mapping: dict[int, int] | None = None, ignore_index: int = 255) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.lut = np.full(256, ignore_index, np.uint8)
        self.valid = np.zeros(256, bool)
        items = mapping.items() if mapping is not None else ((i, i) for i in range(num_classes))
        for src, dst in items:
            self.lut[src] = dst
            self.valid[src] = True
        if 0 <= ignore_index < 256:
            self.valid[ignore_index] = True
        self._valid_u8 = self.valid.astype(np.uint8)
        # Identity tables (folder, VOC): valid values map to themselves, so only validity needs a pass.
        self._identity = bool((self.lut[self.valid] == np.flatnonzero(self.valid)).all())

    def __call__(self, mask: np.ndarray, path: str | Path) -> np.ndarray:
        """Map a stored ``(H, W)`` mask; a value outside the table raises ``BadSampleError`` naming ``path``."""
        if mask.ndim != 2:
            raise BadSampleError(f"{path}: expected a single-channel label image, got shape {mask.shape}")
        if mask.dtype != np.uint8:
            top = int(mask.max()) if mask.size else 0
            if top > 255 or int(mask.min()) < 0:
                raise BadSampleError(f"{path}: label value {top} is neither a class nor ignore_index")
            mask = mask.astype(np.uint8)
        # cv2.LUT is several times faster than numpy fancy indexing on uint8 images.
        mask = np.ascontiguousarray(mask)
        if self._identity and mask.size and int(mask.max()) < self.num_classes:
            return mask  # every value is a class: one reduction, no copy
        if cv2.LUT(mask, self._valid_u8).min() == 0:
            valid = self.valid[mask]
            bad = np.unique(mask[~valid])[:8].tolist()
            raise BadSampleError(
                f"{path}: label values {bad} are neither a class in [0, {self.num_classes}) nor ignore_index "
                f"{self.ignore_index}"
            )
        return mask if self._identity else cv2.LUT(mask, self.lut)


def rgb_to_index(rgb: np.ndarray, colours: np.ndarray, indices: Sequence[int], ignore_index: int = 255) -> np.ndarray:
    """Map an ``(H, W, 3)`` colour-coded mask to indices; colours not in the table become ``ignore_index``.

    Args:
        rgb: ``(H, W, 3)`` uint8.
        colours: ``(K, 3)`` uint8 table.
        indices: the index of each colour.
        ignore_index: the value of unknown colours.

    Returns:
        ``(H, W)`` uint8 indices.
    """
    codes = (rgb[..., 0].astype(np.int32) << 16) | (rgb[..., 1].astype(np.int32) << 8) | rgb[..., 2]
    table = (colours[:, 0].astype(np.int32) << 16) | (colours[:, 1].astype(np.int32) << 8) | colours[:, 2]
    order = np.argsort(table)
    table, values = table[order], np.asarray(indices, np.uint8)[order]
    pos = np.searchsorted(table, codes).clip(0, len(table) - 1)
    return np.where(table[pos] == codes, values[pos], np.uint8(ignore_index)).astype(np.uint8)
