"""Where a folder dataset's images and masks are: the layouts found in the wild, and what did not match."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["FolderLayout", "IMAGE_SUFFIXES", "LAYOUT_HELP", "MASK_SUFFIXES", "find_layout"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
# Stem suffixes of masks named after their image (a.jpg + a_mask.png), tried in this order.
MASK_SUFFIXES = ("_mask", "_masks", "_label", "_labels", "_gt", "_seg", "_segmentation", "_annotation")
LAYOUT_HELP = (
    "expected images/ and masks/ with matching stems (images/a.jpg + masks/a.png), or masks named "
    "<stem>_mask.png (also _label, _gt, _seg; in masks/ or beside the images; or mask_suffix=), "
    "optionally in train/ and val/ subfolders (split='train') or listed in {split}.txt"
)


@dataclass
class FolderLayout:
    """The matched files of a folder dataset.

    Attributes:
        images: image files, in dataset order.
        masks: the mask of each image (the expected path where it is missing).
        missing: images that have no mask.
        orphans: masks that have no image.
        images_dir: the folder of the images.
        masks_dir: the folder of the masks (may be ``images_dir``).
        mask_suffix: the stem suffix of the masks ("" for the same stem).
    """

    images: list[Path]
    masks: list[Path]
    images_dir: Path
    masks_dir: Path
    mask_suffix: str = ""
    missing: list[Path] = field(default_factory=list)
    orphans: list[Path] = field(default_factory=list)

    def describe(self) -> str:
        """E.g. ``images/ + masks/, masks named <stem>_mask.*``."""
        where = "beside the images" if self.masks_dir == self.images_dir else f"in {self.masks_dir}"
        named = f"<stem>{self.mask_suffix}.*" if self.mask_suffix else "with the image's stem"
        return f"images in {self.images_dir}, masks {where} named {named}"


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))


def _base(root: Path, split: str | None) -> tuple[Path, Path | None]:
    """``(folder holding images/ and masks/, split list or None)`` for ``split``."""
    if not root.is_dir():
        raise FileNotFoundError(f"folder: {root} does not exist; {LAYOUT_HELP}")
    if split is not None:
        if split.endswith(".txt"):
            listing = Path(split)
        elif (root / split).is_dir():
            return root / split, None
        else:
            listing = root / f"{split}.txt"
        if not listing.is_file():
            raise FileNotFoundError(
                f"folder: split {split!r}: neither a split file {listing} nor a folder {root / split} exists; "
                f"{LAYOUT_HELP}"
            )
        return root, listing
    if not (root / "images").is_dir():
        splits = [d.name for d in sorted(root.iterdir()) if d.is_dir() and (d / "images").is_dir()]
        if splits:
            raise FileNotFoundError(
                f"folder: {root} holds the split folders {splits}, each with its own images/, and no images/ of "
                f"its own. Remedy: pass split={splits[0]!r} (one dataset per split, e.g. train and val)"
            )
    return root, None


def _match(images: list[Path], masks: list[Path], suffix: str, same_dir: bool) -> tuple[list[Path], dict[str, Path]]:
    """Images (masks left out when they share the folder) and ``{image stem: mask}`` for one mask suffix."""
    by_stem = {p.stem[: len(p.stem) - len(suffix)]: p for p in masks if p.stem.endswith(suffix)}
    if same_dir:
        images = [p for p in images if not p.stem.endswith(suffix)]
    return images, by_stem


def find_layout(root: str | Path, split: str | None = None, mask_suffix: str | None = None) -> FolderLayout:
    """Find images and masks under ``root`` in any of the supported layouts, and match them by stem.

    Layouts: ``root/images`` + ``root/masks`` (same stems, or masks named ``<stem><suffix>``); masks beside the
    images (``a.jpg`` + ``a_mask.png``, in ``root/images`` or in ``root`` itself); ``root/{split}/images`` +
    ``root/{split}/masks`` when ``split`` names a subfolder; ``{root}/{split}.txt`` listing stems otherwise.

    Args:
        root: the dataset folder.
        split: None (every image), a subfolder name, a split list name (``{root}/{split}.txt``) or a ``.txt`` path.
        mask_suffix: the masks' stem suffix (e.g. "_mask"); None tries the same stem, then ``MASK_SUFFIXES``,
            and keeps the one matching most images.

    Returns:
        The ``FolderLayout``; images without masks are in ``missing`` (their expected mask in ``masks``).

    Raises:
        FileNotFoundError: no such folder, split or image (the message describes the layouts).
        ValueError: two images with the same stem.
    """
    root = Path(root)
    base, listing = _base(root, split)
    images_dir = base / "images" if (base / "images").is_dir() else base
    masks_dir = base / "masks" if (base / "masks").is_dir() else images_dir
    image_files = _files(images_dir)
    mask_files = image_files if masks_dir == images_dir else _files(masks_dir)
    same_dir = masks_dir == images_dir
    if mask_suffix is not None:
        suffixes = [mask_suffix]
    else:
        suffixes = ([] if same_dir else [""]) + list(MASK_SUFFIXES)
    best: tuple[int, str, list[Path], dict[str, Path]] | None = None
    for suffix in suffixes:
        imgs, by_stem = _match(image_files, mask_files, suffix, same_dir)
        hits = sum(p.stem in by_stem for p in imgs)
        if best is None or hits > best[0]:
            best = (hits, suffix, imgs, by_stem)
    assert best is not None
    hits, suffix, image_files, by_stem = best
    if same_dir and (hits == 0 or not suffix):
        raise FileNotFoundError(
            f"folder: {base / 'masks'} does not exist (and no mask beside the images); {LAYOUT_HELP}"
        )
    stems: dict[str, Path] = {}
    for p in image_files:
        if p.stem in stems:
            raise ValueError(
                f"folder: {stems[p.stem]} and {p} have the same stem, so one mask would serve both; rename one"
            )
        stems[p.stem] = p
    if listing is not None:
        order = [Path(line.strip()).stem for line in listing.read_text().splitlines() if line.strip()]
        absent = [s for s in order if s not in stems]
        if absent:
            raise FileNotFoundError(f"folder: {listing} names {absent[0]!r}, which has no image in {images_dir}")
        orphans: list[Path] = []  # the masks of other splits are expected here
    else:
        order = sorted(stems)
        orphans = [p for s, p in sorted(by_stem.items()) if s not in stems and p not in image_files]
    if not order:
        raise FileNotFoundError(f"folder: no images in {images_dir}; {LAYOUT_HELP}")
    images = [stems[s] for s in order]
    masks = [by_stem.get(s, masks_dir / f"{s}{suffix}.png") for s in order]
    missing = [img for img, s in zip(images, order) if s not in by_stem]
    return FolderLayout(images, masks, images_dir, masks_dir, suffix, missing, orphans)
