"""Where a folder dataset's images and masks are: the layouts people publish, and what did not match."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "FolderLayout",
    "IMAGE_DIRS",
    "IMAGE_SUFFIXES",
    "LAYOUT_HELP",
    "MASK_DIRS",
    "MASK_SUFFIXES",
    "find_layout",
    "named_dirs",
    "split_folders",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
# Stem suffixes of masks named after their image (a.jpg + a_mask.png), tried in this order (case-insensitive).
MASK_SUFFIXES = (
    "_mask",
    "_masks",
    "-mask",
    "_label",
    "_labels",
    "-label",
    "_gt",
    "-gt",
    "_seg",
    "_segmentation",
    "_annotation",
    "_matte",
)
# Folder names of published datasets, compared lower-case without "_", "-", " " or "." (Ground_Truth ->
# groundtruth), in order of preference when several are present (VOC: SegmentationClass before the rest).
IMAGE_DIRS = (
    "images",
    "image",
    "imgs",
    "img",
    "jpegimages",
    "trainingimages",
    "inputs",
    "input",
    "photos",
    "pictures",
    "rgb",
)
MASK_DIRS = (
    "masks",
    "mask",
    "labels",
    "label",
    "segmentationclass",
    "segmentationclassaug",
    "annotations",
    "annotation",
    "groundtruth",
    "gt",
    "gts",
    "segmentations",
    "segmentation",
    "targets",
    "target",
)
LAYOUT_HELP = (
    "expected a folder of images and one of masks with matching stems (images/a.jpg + masks/a.png; also image/ + "
    "label/, JPEGImages/ + SegmentationClass/, Training_Images/ + Ground_Truth/, ...; other names: image_dir= and "
    "mask_dir=), or masks named <stem>_mask.png (also _label, _gt, _seg, _segmentation; in the masks' folder or "
    "beside the images; or mask_suffix=), optionally in train/ and val/ subfolders (split='train') or listed "
    "in {split}.txt"
)


@dataclass
class FolderLayout:
    """The matched files of a folder dataset.

    Attributes:
        images: image files, in dataset order.
        masks: the mask of each image (the expected path where it is missing).
        images_dir: the folder of the images.
        masks_dir: the folder of the masks (may be ``images_dir``).
        mask_suffix: the stem suffix of the masks ("" for the same stem).
        missing: images that have no mask.
        orphans: masks that have no image.
        folder_images: the images of ``images_dir`` (more than ``images`` when a split list selects some).
        folder_missing: how many of ``folder_images`` have no mask.
        unused: other folders with a recognised name that were left out (``image_dir=``/``mask_dir=`` pick them).
    """

    images: list[Path]
    masks: list[Path]
    images_dir: Path
    masks_dir: Path
    mask_suffix: str = ""
    missing: list[Path] = field(default_factory=list)
    orphans: list[Path] = field(default_factory=list)
    folder_images: int = 0
    folder_missing: int = 0
    unused: list[Path] = field(default_factory=list)

    def describe(self) -> str:
        """E.g. ``images in data/image, masks in data/label named with the image's stem``."""
        where = "beside the images" if self.masks_dir == self.images_dir else f"in {self.masks_dir}"
        named = f"<stem>{self.mask_suffix}.*" if self.mask_suffix else "with the image's stem"
        return f"images in {self.images_dir}, masks {where} named {named}"


def _norm(name: str) -> str:
    return re.sub(r"[\s_.\-]", "", name.lower())


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))


def _subdirs(folder: Path) -> list[Path]:
    return sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))


def named_dirs(folder: Path, names: tuple[str, ...]) -> list[Path]:
    """The subfolders of ``folder`` whose name is one of ``names``, in the order of ``names``.

    Args:
        folder: the folder to look in.
        names: normalised names (lower case without ``_``, ``-``, spaces or dots), e.g. ``IMAGE_DIRS``.

    Returns:
        The matching subfolders (``Ground_Truth`` matches ``groundtruth``).
    """
    found = [d for d in _subdirs(folder) if _norm(d.name) in names]
    return sorted(found, key=lambda d: names.index(_norm(d.name)))


def _cli(**kwargs: str) -> str:
    return " ".join(f"--set data.{k}={v}" for k, v in kwargs.items())


def split_folders(root: str | Path) -> list[str]:
    """The split subfolders of ``root`` (``train/``, ``val/``, ... each holding its own images' folder).

    Returns:
        Their names, sorted; empty when ``root`` has an images' folder of its own (then it is not split).
    """
    root = Path(root)
    if not root.is_dir() or named_dirs(root, IMAGE_DIRS):
        return []
    return [d.name for d in _subdirs(root) if named_dirs(d, IMAGE_DIRS)]


def _split_list(root: Path, split: str) -> Path:
    """The split list of ``split``: a ``.txt`` path, ``{root}/{split}.txt`` or VOC's ``ImageSets/Segmentation``."""
    if split.endswith(".txt"):
        return Path(split)
    for listing in (root / f"{split}.txt", root / "ImageSets" / "Segmentation" / f"{split}.txt"):
        if listing.is_file():
            return listing
    return root / f"{split}.txt"


def _base(root: Path, split: str | None, given: bool) -> tuple[Path, Path | None]:
    """``(folder holding the images' and masks' folders, split list or None)`` for ``split``."""
    if not root.is_dir():
        raise FileNotFoundError(f"folder: {root} does not exist; {LAYOUT_HELP}")
    if split is not None:
        if not split.endswith(".txt") and (root / split).is_dir():
            return root / split, None
        listing = _split_list(root, split)
        if not listing.is_file():
            raise FileNotFoundError(
                f"folder: split {split!r}: neither a split file {listing} nor a folder {root / split} exists; "
                f"{LAYOUT_HELP}"
            )
        return root, listing
    splits = [] if given else split_folders(root)
    if splits:
        raise FileNotFoundError(
            f"folder: {root} holds the split folders {splits}, each with its own images, and no images of its own. "
            f"Remedy: pass split={splits[0]!r} (one dataset per split, e.g. train and val; on the command line "
            f"--split {splits[0]}; segkit train --data uses train/ and val/ by itself)"
        )
    return root, None


def _resolve(base: Path, root: Path, given: str | Path, option: str) -> Path:
    """``image_dir=``/``mask_dir=``: absolute, or relative to the split's folder, else to ``root``."""
    path = Path(given)
    for folder in [path] if path.is_absolute() else [base / path, root / path]:
        if folder.is_dir():
            if base != root and base.resolve() not in folder.resolve().parents:
                # Every split would read this same folder: the validation split would be the training images.
                raise FileNotFoundError(
                    f"folder: split {base.name!r} is the subfolder {base}, but {option}={str(given)!r} is {folder}, "
                    f"outside it, so every split would read the same files. Remedy: name a folder inside each "
                    f"split's subfolder, or list each split's stems in {root}/{{split}}.txt"
                )
            return folder
    found = [d.name for d in _subdirs(base)]
    raise FileNotFoundError(f"folder: {option}={str(given)!r}: no such folder in {base}; its subfolders are {found}")


def _stem_match(
    images: list[Path], masks: list[Path], suffixes: list[str], same_dir: bool
) -> tuple[int, str, list[Path], dict[str, Path]]:
    """The suffix matching most images: ``(hits, suffix, images, {image stem (lower case): mask})``.

    Stems are compared lower-case (``IMG_01.JPG`` + ``img_01.png``). Where masks share the images' folder,
    the files ending in the suffix are masks, not images.
    """
    best: tuple[int, str, list[Path], dict[str, Path]] = (-1, "", images, {})
    for suffix in suffixes:
        low = suffix.lower()
        by_stem = {p.stem.lower()[: len(p.stem) - len(low)]: p for p in masks if p.stem.lower().endswith(low)}
        imgs = [p for p in images if not p.stem.lower().endswith(low)] if same_dir else images
        hits = sum(p.stem.lower() in by_stem for p in imgs)
        if hits > best[0]:
            best = (hits, suffix, imgs, by_stem)
    return best


def _suffixes(mask_suffix: str | None, same_dir: bool) -> list[str]:
    if mask_suffix is not None:
        return [mask_suffix]
    return ([] if same_dir else [""]) + list(MASK_SUFFIXES)


def _no_pair_message(base: Path, mask_suffix: str | None) -> str:
    """Nothing recognised: the subfolders found (with their image counts) and the options that would pair them."""
    dirs = [(d, _files(d)) for d in _subdirs(base)]
    listed = ", ".join(f"{d.name}/ ({len(files)} images)" for d, files in dirs) or "none"
    best: tuple[int, Path, Path, str] | None = None
    for di, images in dirs:
        for dm, masks in dirs:
            if images and masks:
                hits, suffix, _, _ = _stem_match(images, masks, _suffixes(mask_suffix, di == dm), di == dm)
                if hits > 0 and (best is None or hits > best[0]):
                    best = (hits, di, dm, suffix)
    head = f"folder: no images' and masks' folders recognised in {base}; its subfolders: {listed}. "
    if best is None:
        return head + LAYOUT_HELP
    hits, di, dm, suffix = best
    opts = {"image_dir": di.name, "mask_dir": dm.name, **({"mask_suffix": suffix} if suffix else {})}
    python = ", ".join(f"{k}={v!r}" for k, v in opts.items())
    return (
        head + f"{hits} stems of {di.name}/ have a mask in {dm.name}/. Remedy: pass {python} "
        f"(on the command line: {_cli(**opts)})"
    )


def _folders(
    base: Path, root: Path, image_dir: str | Path | None, mask_dir: str | Path | None, mask_suffix: str | None
) -> tuple[int, Path, Path, str, list[Path], dict[str, Path], list[Path]]:
    """Pick the images' and masks' folders: the given ones, else the recognised pair whose stems match most.

    Returns:
        ``(hits, images_dir, masks_dir, suffix, image files, {stem: mask}, recognised folders left out)``.
    """
    image_opts = [_resolve(base, root, image_dir, "image_dir")] if image_dir is not None else []
    if not image_opts:
        image_opts = [d for d in named_dirs(base, IMAGE_DIRS) if _files(d)] or [base]
    if mask_dir is not None:
        mask_opts = [_resolve(base, root, mask_dir, "mask_dir")]
    else:
        mask_opts = [d for d in named_dirs(base, MASK_DIRS) if d not in image_opts and _files(d)]
    listing = {d: _files(d) for d in {*image_opts, *mask_opts}}
    best: tuple[int, Path, Path, str, list[Path], dict[str, Path]] | None = None
    for di in image_opts:
        # Masks beside the images are tried last: a masks' folder wins a tie.
        for dm in mask_opts + ([di] if mask_dir is None else []):
            same = dm == di
            hits, suffix, imgs, by_stem = _stem_match(listing[di], listing[dm], _suffixes(mask_suffix, same), same)
            if same and (hits == 0 or not suffix):
                continue  # a folder is not its own masks' folder without a suffix telling them apart
            if best is None or hits > best[0]:
                best = (hits, di, dm, suffix, imgs, by_stem)
    if best is None:
        if image_dir is not None:
            raise FileNotFoundError(
                f"folder: no masks found for image_dir={str(image_dir)!r}: pass mask_dir= (or mask_suffix= for "
                f"masks beside the images); the subfolders of {base} are {[d.name for d in _subdirs(base)]}"
            )
        raise FileNotFoundError(_no_pair_message(base, mask_suffix))
    unused = [d for d in (*image_opts, *mask_opts) if d not in best[1:3] and d != base]
    return (*best, unused)


def find_layout(
    root: str | Path,
    split: str | None = None,
    mask_suffix: str | None = None,
    image_dir: str | Path | None = None,
    mask_dir: str | Path | None = None,
) -> FolderLayout:
    """Find images and masks under ``root`` in any of the supported layouts, and match them by stem.

    Layouts: a folder of images and one of masks, by the names published datasets use (``images/`` +
    ``masks/``, ``image/`` + ``label/``, ``JPEGImages/`` + ``SegmentationClass/``, ``Training_Images/`` +
    ``Ground_Truth/``, ...: ``IMAGE_DIRS`` and ``MASK_DIRS``, any case) or named by ``image_dir``/``mask_dir``;
    same stems (case-insensitive) or masks named ``<stem><suffix>``; masks beside the images (``a.jpg`` +
    ``a_mask.png``, in the images' folder or in ``root`` itself); the same inside ``root/{split}`` when
    ``split`` names a subfolder; ``{root}/{split}.txt`` (or VOC's ``ImageSets/Segmentation/{split}.txt``)
    listing stems otherwise. Where several recognised pairs exist, the one matching most stems is used.

    Args:
        root: the dataset folder.
        split: None (every image), a subfolder name, a split list name or a ``.txt`` path.
        mask_suffix: the masks' stem suffix (e.g. "_mask"); None tries the same stem, then ``MASK_SUFFIXES``,
            and keeps the one matching most images.
        image_dir: the images' folder (relative to the split's folder or ``root``, or absolute); None finds it.
        mask_dir: the masks' folder, likewise; None finds it (a recognised name, else beside the images).

    Returns:
        The ``FolderLayout``; images without masks are in ``missing`` (their expected mask in ``masks``).

    Raises:
        FileNotFoundError: no such folder, split or image; no folders recognised (the message lists the
            subfolders found and the ``image_dir=``/``mask_dir=`` that would pair them).
        ValueError: two images with the same stem.
    """
    root = Path(root)
    base, listing = _base(root, split, image_dir is not None or mask_dir is not None)
    hits, images_dir, masks_dir, suffix, image_files, by_stem, unused = _folders(
        base, root, image_dir, mask_dir, mask_suffix
    )
    stems: dict[str, Path] = {}
    for p in image_files:
        if p.stem.lower() in stems:
            raise ValueError(
                f"folder: {stems[p.stem.lower()]} and {p} have the same stem, so one mask would serve both; rename one"
            )
        stems[p.stem.lower()] = p
    if listing is not None:
        order = [Path(line.strip()).stem.lower() for line in listing.read_text().splitlines() if line.strip()]
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
    masks = [by_stem.get(s, masks_dir / f"{stems[s].stem}{suffix}.png") for s in order]
    missing = [img for img, s in zip(images, order) if s not in by_stem]
    folder_missing = len(stems) - hits
    return FolderLayout(
        images, masks, images_dir, masks_dir, suffix, missing, orphans, len(stems), folder_missing, unused
    )
