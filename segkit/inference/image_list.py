"""The images a split list names (``val.txt``: one image path or stem per line), found as users keep them."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["read_image_list"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
# Folders whose files are labels, not images: a stem found both in images/ and masks/ is the image.
_LABEL_DIRS = {
    "mask",
    "masks",
    "label",
    "labels",
    "annotations",
    "segmentationclass",
    "segmentationobject",
    "ground_truth",
    "groundtruth",
    "gt",
    "gts",
    "trainannot",
    "valannot",
    "testannot",
}


def read_image_list(listing: str | Path, root: str | Path | None = None) -> list[Path]:
    """The image files a split list names, in its order.

    Each non-empty line (``#`` starts a comment) is an image path or a stem. A path is tried as given
    (absolute), under ``root`` and under the list's folder; a stem (or a path not found) is looked up among
    the images under ``root`` (default: the list's folder), in any subfolder, by file stem; when images and
    masks share stems the one outside a label folder (``masks/``, ``labels/``, ``SegmentationClass/``, ...) is
    the image.

    Args:
        listing: the list file (``val.txt``, a run's ``splits/val.txt``, VOC's ``ImageSets/Segmentation/val.txt``).
        root: the folder the names are relative to; None: the list's folder.

    Returns:
        The image paths.

    Raises:
        FileNotFoundError: the list, or a named image, is missing; one message names how many and the first few,
            and the folder searched.
        ValueError: the list is empty, or a stem matches several images.
    """
    listing = Path(listing)
    if not listing.is_file():
        raise FileNotFoundError(f"--list {listing}: no such file")
    base = Path(root) if root is not None else listing.parent
    if not base.is_dir():
        raise FileNotFoundError(f"--root {base}: no such folder")
    names = [line.split("#", 1)[0].strip() for line in listing.read_text().splitlines()]
    names = [n for n in names if n]
    if not names:
        raise ValueError(f"--list {listing}: no image named (one image path or stem per line)")
    by_stem: dict[str, list[Path]] | None = None
    found: list[Path] = []
    missing: list[str] = []
    for name in names:
        direct = [Path(name), base / name, listing.parent / name]
        hit = next((p for p in direct if p.is_file()), None)
        if hit is None:
            if by_stem is None:
                by_stem = _images_by_stem(base)
            stem = Path(name).stem if Path(name).suffix.lower() in IMAGE_SUFFIXES else name
            hit = _pick(stem, by_stem, base, listing)
        if hit is None:
            missing.append(name)
        else:
            found.append(hit)
    if missing:
        raise FileNotFoundError(
            f"--list {listing}: {len(missing)} of {len(names)} names have no image under {base} (searched by path and "
            f"by stem in every subfolder): {', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}. Remedy: "
            f"pass --root with the folder the names are relative to"
        )
    return found


def _images_by_stem(base: Path) -> dict[str, list[Path]]:
    index: dict[str, list[Path]] = {}
    for folder, dirs, files in os.walk(base):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for f in sorted(files):
            p = Path(folder) / f
            if p.suffix.lower() in IMAGE_SUFFIXES and not f.startswith("."):
                index.setdefault(p.stem, []).append(p)
    return index


def _pick(stem: str, by_stem: dict[str, list[Path]], base: Path, listing: Path) -> Path | None:
    candidates = by_stem.get(stem, [])
    if len(candidates) > 1:
        images = [p for p in candidates if not any(d.lower() in _LABEL_DIRS for d in p.relative_to(base).parent.parts)]
        candidates = images or candidates
    if len(candidates) > 1:
        raise ValueError(
            f"--list {listing}: {stem!r} matches {len(candidates)} images ({', '.join(map(str, candidates[:3]))}); "
            f"write the path in the list, or pass --root with the images' folder"
        )
    return candidates[0] if candidates else None
