"""Label-file headers and value counts: what ``detect_mask_encoding`` reads before deciding."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from segkit.datasets.bad_samples import BadSampleError
from segkit.datasets.decoding import read_mask

if TYPE_CHECKING:
    from segkit.datasets.mask_encoding import MaskEncoding

__all__ = ["MaskHeader", "MaskStats", "count_masks", "is_lossy", "mask_header", "palette_block"]

# A 0/255 set with stray values: the strays are at most this share of the pixels read...
STRAY_SHARE = 1e-3
# ...and at most this share of the 255 pixels. VOC's 255 is a thin boundary around labelled objects, so
# the objects outnumber a tenth of it unless they are a pixel or two wide; in binary masks 255 is the objects.
STRAY_PER_FOREGROUND = 0.1

_GREY_MODES = {"1", "L", "P", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}


@dataclass(frozen=True)
class MaskHeader:
    """What a label file's header says.

    Attributes:
        mode: PIL's mode ("L", "P", "I;16", "RGB", ...).
        group: "grey" (one value per pixel: greyscale, palette, 16-bit) or "rgb" (colours).
    """

    mode: str
    group: str


def mask_header(path: str | Path) -> MaskHeader | None:
    """The mode of ``path`` from its header only, or None if it cannot be opened."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            mode = im.mode
    except (OSError, ValueError):
        return None
    return MaskHeader(mode, "grey" if mode in _GREY_MODES else "rgb")


def is_lossy(path: str | Path) -> str | None:
    """ "JPEG" or "lossy WebP" when the file's signature says so (whatever its suffix), else None."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError:
        return None
    if head[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if head[:4] == b"RIFF" and head[8:16] == b"WEBPVP8 ":
        return "lossy WebP"
    return None


@dataclass
class MaskStats:
    """Distinct stored values and their pixel counts, per file.

    Attributes:
        per_file: ``(path, values, counts, rgb)``: sorted distinct values (grey values, or ``r<<16|g<<8|b``
            colour codes when ``rgb``) and how many pixels hold each.
        failed: ``(path, reason)`` of files that could not be decoded.
        grey_rgb: every file read is a 3-channel image whose channels are equal (greyscale saved as RGB).
    """

    per_file: list[tuple[Path, np.ndarray, np.ndarray, bool]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    grey_rgb: bool = False

    @property
    def files(self) -> int:
        """The number of files whose values were read."""
        return len(self.per_file)

    def present(self) -> list[int]:
        """Sorted distinct grey values over every file."""
        grey = [v for _, v, _, rgb in self.per_file if not rgb]
        return np.unique(np.concatenate(grey)).tolist() if grey else []

    def distinct(self) -> int:
        """The number of distinct values (or colours) over every file."""
        return len(np.unique(np.concatenate([v for _, v, _, _ in self.per_file]))) if self.per_file else 0

    def colours(self) -> tuple[np.ndarray, np.ndarray]:
        """``(colours (n, 3) uint8, pixel shares (n,))`` over every file, most frequent first."""
        codes = np.concatenate([v if rgb else v * 65793 for _, v, _, rgb in self.per_file])
        counts = np.concatenate([c for _, _, c, _ in self.per_file])
        uniq, inverse = np.unique(codes, return_inverse=True)
        totals = np.bincount(inverse.reshape(-1), weights=counts)
        order = np.argsort(-totals, kind="stable")
        uniq = uniq[order]
        rgb = np.stack([(uniq >> 16) & 255, (uniq >> 8) & 255, uniq & 255], 1).astype(np.uint8)
        return rgb, totals[order] / totals.sum()

    def near_binary(self, ignore_index: int) -> list[tuple[Path, int, int]]:
        """The stray pixels of a 0/255 binary set, or ``[]`` when the values are not near-binary.

        Near-binary: 0 and 255 are both present, and the other values (``ignore_index`` aside) hold at
        most ``STRAY_SHARE`` of the pixels read and at most ``STRAY_PER_FOREGROUND`` of the 255
        pixels. Masks with classes ``1..K`` and a 255 boundary (VOC) never pass: the boundary
        surrounds labelled pixels, which therefore outnumber it; a class 1 that is common never passes.

        Args:
            ignore_index: a stored value that is not a stray (it stays ignored).

        Returns:
            ``(path, value, pixels)`` of each stray value, file by file, in file order.
        """
        grey = [(p, v, c) for p, v, c, rgb in self.per_file if not rgb]
        if not grey or not {0, 255} <= set(self.present()):
            return []
        strays = [
            (path, int(value), int(count))
            for path, values, counts in grey
            for value, count in zip(values.tolist(), counts.tolist())
            if value not in (0, 255, ignore_index)
        ]
        stray = sum(c for _, _, c in strays)
        total = sum(float(c.sum()) for _, _, c in grey)
        foreground = sum(float(c[v == 255].sum()) for _, v, c in grey)
        if not strays or stray > STRAY_SHARE * total or stray > STRAY_PER_FOREGROUND * foreground:
            return []
        return strays

    def class_counts(self, enc: MaskEncoding) -> tuple[np.ndarray, list[tuple[Path, list[int], bool]]]:
        """Pixels per class under ``enc`` (index ``K``: ignored) and the files holding values it does not list.

        Args:
            enc: the encoding (its ``decode`` maps the distinct values, a row of pixels per file).

        Returns:
            ``((K + 1,) counts, [(path, values not decodable, rgb)])``.
        """
        k = enc.num_classes
        totals = np.zeros(k + 1, np.float64)
        bad: list[tuple[Path, list[int], bool]] = []
        for path, values, counts, rgb in self.per_file:
            if enc.colours is not None and not rgb:  # a grey file among colour masks: its colour is (v, v, v)
                values, rgb = values * 65793, True
            row = _as_row(values, rgb)
            try:
                classes = enc.decode(row, path).reshape(-1)
            except BadSampleError:
                ok = np.zeros(len(values), bool)
                classes = np.zeros(len(values), np.uint8)
                for j in range(len(values)):  # few distinct values: find which ones fail
                    try:
                        classes[j] = enc.decode(row[:, j : j + 1], path).reshape(-1)[0]
                        ok[j] = True
                    except BadSampleError:
                        pass
                bad.append((path, values[~ok].tolist(), rgb))
                values, counts, classes = values[ok], counts[ok], classes[ok]
            index = np.where(classes.astype(np.int64) < k, classes, k)
            totals += np.bincount(index, weights=counts, minlength=k + 1)
        return totals, bad


def _as_row(values: np.ndarray, rgb: bool) -> np.ndarray:
    """Distinct values as a ``(1, n)`` (or ``(1, n, 3)`` colour) image, so ``decode`` maps them as pixels."""
    if rgb:
        return np.stack([(values >> 16) & 255, (values >> 8) & 255, values & 255], -1).astype(np.uint8)[None]
    dtype = np.uint8 if values.size == 0 or values.max() < 256 else np.uint16
    return values.astype(dtype)[None]


def _count_one(path: Path) -> tuple[Path, np.ndarray, np.ndarray, bool, bool] | tuple[Path, str]:
    """``(path, values, counts, rgb, grey_rgb)`` of one file, or ``(path, reason)`` if it cannot be read."""
    try:
        mask = read_mask(path)
    except BadSampleError as exc:
        return path, str(exc)
    except Exception as exc:  # an OpenCV layout it cannot convert (e.g. grey + alpha)
        return path, f"{path}: unsupported label file ({exc})"
    grey_rgb = False
    if mask.ndim == 3:
        first = mask[..., 0]
        grey_rgb = bool(np.array_equal(first, mask[..., 1]) and np.array_equal(first, mask[..., 2]))
        if grey_rgb:
            mask = np.ascontiguousarray(first)
        else:
            codes = (mask[..., 0].astype(np.int64) << 16) | (mask[..., 1].astype(np.int64) << 8) | mask[..., 2]
            values, counts = np.unique(codes, return_counts=True)
            return path, values, counts.astype(np.float64), True, False
    if mask.dtype == np.uint8:
        # calcHist: one pass, several times faster than bincount on a large uint8 image
        hist = cv2.calcHist([np.ascontiguousarray(mask)], [0], None, [256], [0, 256]).reshape(-1)
    else:
        hist = np.bincount(mask.reshape(-1).astype(np.int64), minlength=1).astype(np.float64)
    values = np.flatnonzero(hist)
    return path, values, hist[values].astype(np.float64), False, grey_rgb


def count_masks(paths: Sequence[Path], progress: bool = True) -> MaskStats:
    """Read every file of ``paths`` and count its distinct values (threads: decoding releases the GIL).

    Args:
        paths: label files.
        progress: show a tqdm bar on stderr if reading takes over a second.

    Returns:
        The ``MaskStats``.
    """
    from tqdm import tqdm

    stats = MaskStats()
    grey_rgb: list[bool] = []
    workers = min(8, os.cpu_count() or 1, max(1, len(paths)))
    with ThreadPoolExecutor(workers) as pool:
        results = pool.map(_count_one, paths)
        bar = tqdm(results, total=len(paths), desc="reading masks", unit="file", delay=1.0, file=sys.stderr,
                   disable=not progress, leave=False)  # fmt: skip
        for result in bar:
            if len(result) == 2:
                stats.failed.append((str(result[0]), str(result[1])))
                continue
            path, values, counts, rgb, is_grey_rgb = result
            stats.per_file.append((path, values, counts, rgb))
            grey_rgb.append(is_grey_rgb)
    stats.grey_rgb = bool(grey_rgb) and all(grey_rgb)
    return stats


def palette_block(colours: np.ndarray) -> str:
    """The YAML ``palette:`` block of ``colours`` (one ``[r, g, b]`` line per class), to paste in a config."""
    lines = ["  palette:"]
    lines += [f"    - [{int(r)}, {int(g)}, {int(b)}]   # class {k}" for k, (r, g, b) in enumerate(colours)]
    return "\n".join(lines)
