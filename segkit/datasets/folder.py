"""``folder``: your own data as ``images/`` + ``masks/`` with matching file stems."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from segkit.datasets import DATASETS
from segkit.datasets.base import default_palette
from segkit.datasets.files import (
    BadSampleError,
    FileDataset,
    LabelTable,
    check_decoded,
    check_items,
    read_image,
    read_mask,
    rgb_to_index,
)

__all__ = ["FolderDataset"]

_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
_LAYOUT = "expected images/ and masks/ with matching stems (e.g. images/a.jpg + masks/a.png), optional {split}.txt"


@DATASETS.register("folder")
class FolderDataset(FileDataset):
    """Images in ``images/`` and label images in ``masks/`` matched by file stem (any image suffix).

    Args:
        root: the folder holding ``images/`` and ``masks/``.
        split: None for every image, or a name: ``{root}/{split}.txt`` (one stem or file name per line);
            a path ending in ``.txt`` is read directly.
        num_classes: number of classes; None infers it from the masks (max label + 1, reading them all).
        class_names: names; default ``class_0 ...``.
        palette: ``(K, 3)`` RGB colours: masks are RGB images whose colour ``k`` is class ``k``
            (unknown colours -> ``ignore_index``); None: masks hold indices.
        ignore_index: the value of ignored pixels.
        transforms: albumentations ``Compose``; None normalises only.
        on_bad_sample: "raise" or "skip".
        check_files: check every pair at construction (headers only).
        mean, std: per-channel normalisation statistics in raw pixel units (a number is used for every
            channel); None: ImageNet's for 3-channel uint8 images, else computed from a sample of the
            images at construction (see ``FileDataset._init_image_format``). Multi-band TIFFs set
            ``in_channels``.
    """

    task = "semantic"

    def __init__(
        self,
        root: str | Path,
        split: str | None = None,
        num_classes: int | None = None,
        class_names: Sequence[str] | None = None,
        palette: Sequence[Sequence[int]] | np.ndarray | None = None,
        ignore_index: int = 255,
        transforms: Callable[..., dict[str, Any]] | None = None,
        on_bad_sample: str = "raise",
        check_files: bool = True,
        mean: Sequence[float] | float | None = None,
        std: Sequence[float] | float | None = None,
    ) -> None:
        self._init_common(transforms, on_bad_sample, mean, std)
        self.root = Path(root)
        self.ignore_index = ignore_index
        images_dir, masks_dir = self.root / "images", self.root / "masks"
        for d in (images_dir, masks_dir):
            if not d.is_dir():
                raise FileNotFoundError(f"folder: {d} does not exist; {_LAYOUT}")
        images = {p.stem: p for p in sorted(images_dir.iterdir()) if p.suffix.lower() in _SUFFIXES}
        masks = {p.stem: p for p in sorted(masks_dir.iterdir()) if p.suffix.lower() in _SUFFIXES}
        if split is None:
            stems = sorted(images)
        else:
            listing = Path(split) if split.endswith(".txt") else self.root / f"{split}.txt"
            if not listing.is_file():
                raise FileNotFoundError(f"folder: split file {listing} does not exist; {_LAYOUT}")
            stems = [Path(line.strip()).stem for line in listing.read_text().splitlines() if line.strip()]
            missing = [s for s in stems if s not in images]
            if missing:
                raise FileNotFoundError(f"folder: {listing} names {missing[0]!r}, which has no image in {images_dir}")
        if not stems:
            raise FileNotFoundError(f"folder: no images in {images_dir}; {_LAYOUT}")
        self.items = [(images[s], masks.get(s, masks_dir / f"{s}.png")) for s in stems]
        if check_files:
            check_items(self.items, on_bad_sample, self.bad_samples)
        self.colours = None if palette is None else np.asarray(palette, np.uint8).reshape(-1, 3)
        if num_classes is None:
            num_classes = len(self.colours) if self.colours is not None else len(class_names or ()) or self._infer()
        self.num_classes = int(num_classes)
        self.class_names = (
            tuple(class_names) if class_names is not None else tuple(f"class_{i}" for i in range(num_classes))
        )
        if len(self.class_names) != self.num_classes:
            raise ValueError(f"folder: {len(self.class_names)} class_names for num_classes={self.num_classes}")
        self.palette = self.colours if self.colours is not None else default_palette(self.num_classes)
        self.table = LabelTable(self.num_classes, ignore_index=ignore_index)
        self._init_image_format()  # in_channels and dtype from the first image's header; normalization

    def _infer(self) -> int:
        """Number of classes = largest label in any mask (other than ``ignore_index``) + 1."""
        top = 0
        for _, mask_path in self.items:
            m = read_mask(mask_path)
            if m.ndim == 3:
                raise BadSampleError(f"{mask_path}: an RGB mask; pass palette= to map colours to classes")
            values = np.unique(m)
            values = values[values != self.ignore_index]
            if values.size:
                top = max(top, int(values.max()))
        return top + 1

    def load_raw(self, index: int) -> tuple[np.ndarray, np.ndarray | None, None]:
        image_path, mask_path = self.items[index]
        if not Path(mask_path).is_file():
            raise BadSampleError(f"{image_path}: no mask (expected {mask_path})")
        image, mask = read_image(image_path), read_mask(mask_path)
        check_decoded(image, mask, image_path, mask_path)
        if self.colours is not None:
            if mask.ndim != 3:
                raise BadSampleError(f"{mask_path}: palette= given but the mask is not an RGB image")
            return image, rgb_to_index(mask, self.colours, range(len(self.colours)), self.ignore_index), None
        if mask.ndim == 3:
            raise BadSampleError(f"{mask_path}: an RGB mask; pass palette= to map colours to classes")
        return image, self.table(mask, mask_path), None
