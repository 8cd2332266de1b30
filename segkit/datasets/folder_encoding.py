"""A folder's mask encoding, shared by its splits: decided once over every split's masks, then each split's shares.

Deciding per split would let the splits disagree: a validation split holding one more class than training
would say ``num_classes=4`` to a 3-class model, and a validation split of negative images only (defect
detection) would be refused as "one class, nothing to learn". So the class count, the encoding and the
degenerate checks are the whole folder's; a split only reports its own pixel shares and its own bad files.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from segkit.datasets.folder_layout import IMAGE_DIRS, find_layout, named_dirs
from segkit.datasets.mask_encoding import MaskEncoding, MaskEncodingError, detect_mask_encoding
from segkit.datasets.mask_messages import bad_value_message
from segkit.datasets.mask_stats import count_masks
from segkit.datasets.subsample import evenly_spaced

__all__ = ["folder_mask_files", "shared_encoding", "split_encoding", "split_line"]

_CACHE: OrderedDict[tuple[Any, ...], MaskEncoding] = OrderedDict()
_CACHE_SIZE = 8


def folder_mask_files(
    root: str | Path,
    split: str,
    mask_suffix: str,
    image_dir: str | Path | None = None,
    mask_dir: str | Path | None = None,
) -> list[Path]:
    """Every existing mask of the folder that ``split`` is a part of.

    Args:
        root: the dataset folder.
        split: a subfolder of ``root`` (then every sibling subfolder laid out alike counts), or a split list
            (then every image of ``root``).
        mask_suffix: the masks' stem suffix found for the split.
        image_dir, mask_dir: the folders given to the dataset (``find_layout``), if any.

    Returns:
        The mask files, or an empty list when the folder's other parts cannot be found.
    """
    root = Path(root)
    parts: list[str | None]
    if not split.endswith(".txt") and (root / split).is_dir():
        nested = bool(named_dirs(root / split, IMAGE_DIRS))
        parts = [d.name for d in sorted(root.iterdir()) if d.is_dir() and bool(named_dirs(d, IMAGE_DIRS)) == nested]
        parts = [p for p in parts if not str(p).startswith(".")]
    else:
        parts = [None]
    masks: list[Path] = []
    for part in parts:
        try:
            layout = find_layout(root, part, mask_suffix, image_dir, mask_dir)
        except (FileNotFoundError, ValueError):  # not a split of this folder (or not laid out alike)
            continue
        masks.extend(m for m in layout.masks if m.is_file())
    return masks


def _key(paths: Sequence[Path], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """The files as they are now (path, size, mtime) and the arguments of the decision."""
    stamps = tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in paths)
    given = repr(sorted((k, v.tolist() if isinstance(v, np.ndarray) else v) for k, v in kwargs.items()))
    return stamps, given


def shared_encoding(paths: Sequence[Path], **kwargs: Any) -> tuple[MaskEncoding, bool]:
    """``detect_mask_encoding(paths, **kwargs)``, remembered for the files as they are now (size, mtime), so the
    splits of one folder decide (and read the masks) once.

    Returns:
        ``(encoding, new)``: ``new`` is False when it was already decided in this process.
    """
    key = _key(paths, kwargs)
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key], False
    enc = detect_mask_encoding(paths, **kwargs)
    _CACHE[key] = enc
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return enc, True


def split_encoding(folder: MaskEncoding, paths: Sequence[Path], strict: bool, sample: int = 64) -> MaskEncoding:
    """The folder's encoding with one split's pixel shares, read from ``sample`` evenly spaced files.

    A split where fewer than 2 classes have pixels (a validation split of negative images) is accepted: the
    degenerate checks were made on the whole folder. It gets a note instead.

    Args:
        folder: the encoding decided over the whole folder.
        paths: the split's mask files.
        strict: raise on a file read that does not decode with ``folder`` (else record it in ``bad_files``).
        sample: how many files to read.

    Raises:
        MaskEncodingError: ``strict`` and a file read holds a value (or colour) the encoding does not list.
    """
    files = [Path(p) for p in paths if Path(p).is_file()]
    stats = count_masks([files[i] for i in evenly_spaced(len(files), sample)], progress=False)
    counts, bad = stats.class_counts(folder)
    bad_files = list(stats.failed) + [(str(p), bad_value_message(p, found, rgb, folder)) for p, found, rgb in bad]
    if bad_files and strict:
        raise MaskEncodingError(bad_files[0][1])
    k = folder.num_classes
    total = counts.sum()
    enc = dataclasses.replace(folder, notes=[], bad_files=bad_files)
    enc.pixel_share = counts[:k] / total if total else np.zeros(k)
    enc.ignored_share = float(counts[k] / total) if total else 0.0
    enc.files_read, enc.files_total = stats.files, len(files)
    if bad_files:
        enc.notes.append(f"{len(bad_files)} label files read do not decode this way; they fail when loaded")
    return enc


def split_line(enc: MaskEncoding, split: str, images: int, class_names: Sequence[str]) -> str:
    """One line for a split of a folder whose encoding block was printed: its images and pixel shares."""
    name = Path(split).stem if split.endswith(".txt") else split
    shares = enc.pixel_share
    order = range(len(shares)) if len(shares) <= 8 else np.argsort(-shares)[:5]
    listed = ", ".join(f"{class_names[k]} {100 * shares[k]:.1f}%" for k in order)
    line = (
        f"folder split {name!r}: {images} images, {enc.files_read} label files read: {listed}"
        f"{'' if len(shares) <= 8 else ', ...'}, ignored {100 * enc.ignored_share:.1f}%"
    )
    present = np.flatnonzero(shares > 0)
    if len(present) < 2:
        only = f"class {int(present[0])} ({class_names[int(present[0])]})" if len(present) else "no labelled pixel"
        line += (
            f"\n  note: split {name!r} holds only {only} in the files read: accepted (e.g. negative images), "
            "the class count comes from the whole folder; absent classes count in its mIoU only where predicted"
        )
    return "\n".join([line, *(f"  note: {n}" for n in enc.notes)])
