"""``folder``: your own images and masks, in the layouts found in the wild, with the masks' encoding diagnosed.

What the messages mean
----------------------
At construction the dataset reads the masks (a sample of up to 64 files; every file only where the number of
classes must be inferred) and prints one block: the decision, the files read and the share of pixels per class.
The decision is one of these lines:

- ``index masks (values 0..K-1, 255 = ignore_index): K classes``: each stored value is a class index; the value
  ``ignore_index`` (default 255) marks pixels the loss and the metrics skip.
- ``binary masks stored as 0/255: 2 classes, 255 -> class 1``: black/white masks (the usual export of drawing
  tools); 255 is the foreground class, not "ignore". Masks stored as 0/1 are index masks of 2 classes.
- ``palette PNG masks, indices kept``: palette-mode PNGs (VOC style) are read as their indices, never as colours.
- ``16-bit PNG masks holding indices``: 16-bit PNGs; values above 255 need ``mask_values``.
- ``RGB colour masks mapped by palette=``: colour ``k`` of ``palette`` is class ``k``; other colours (antialiased
  edges) are ignored, and their share is printed as "ignored".
- ``masks mapped by mask_values``: ``mask_values=[0, 85, 170]`` says stored value 85 is class 1, and so on;
  any other value is an error naming the file (``unlisted="ignore"`` ignores it, ``unlisted="nearest"`` snaps it).
- ``lossy (JPEG) masks: every pixel snapped to the nearest ...``: JPEG masks with ``mask_values`` (or
  ``palette`` for colour JPEGs): each pixel goes to the nearest listed value; edges may move by a pixel or two.
- ``(greyscale saved as RGB: channel 0 used)``: RGB masks whose three channels are equal.

What is refused, before any training (each message names a file, the reason and the remedy):

- ``a JPEG mask: lossy compression invents values near every edge``: save PNGs, or give ``mask_values``.
- ``RGB colour masks, but no palette=``: the message lists the colours found with their share of pixels and a
  ``palette:`` block to paste into the config (reorder its lines into your class order).
- ``... would make 171 classes, 168 of them without a single pixel``: a greyscale encoding such as
  {0, 85, 170}; pass ``mask_values=[0, 85, 170]``, or ``num_classes`` to confirm that classes are absent.
- ``every pixel ... is ignore_index``, ``every labelled pixel ... is class 0``, ``a model needs at least 2
  classes``: nothing to learn (empty masks, or 0/255 masks read with ``num_classes`` > 2).
- ``label values [7] are neither a class in [0, 4) nor ignore_index``: a file with a value >= ``num_classes``.
- ``N of M images have no label file`` (with a split list: the folder's count, then the split's): add the
  masks, or ``on_bad_sample="skip"`` drops those images.
- ``holds the split folders ['train', 'val']``: pass ``split="train"`` (and a second dataset for ``"val"``).
- ``no images' and masks' folders recognised``: the message lists the subfolders with their image counts and
  the ``image_dir=``/``mask_dir=`` whose stems match.
- ``N of M masks differ in size from their image with another aspect ratio``: one error for every such pair
  (the first few named); ``on_bad_sample="skip"`` drops them. Masks with their image's aspect ratio (saved at
  another scale) are resized with nearest neighbour when loaded, said once with their count
  (``mask_resize="error"`` refuses them instead).

Every "skipped" line (``on_bad_sample="skip"``) ends with the total skipped and the share of the data lost.

Masks without images are reported in one warning line (count and first names).

Splits (``split="train"``, ``"val"``, a split list): the encoding, ``num_classes`` and the checks above are
decided over the masks of every split of the folder, so the splits agree (a validation split holding a class
training lacks does not make its own class count) and a split of negative images only is accepted (a note says
so). The folder's block is printed once per process, then one line per split with its own pixel shares.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from segkit.datasets.bad_samples import BadSampleError
from segkit.datasets.base import default_palette
from segkit.datasets.decoding import read_image, read_mask
from segkit.datasets.file_dataset import FileDataset, check_decoded
from segkit.datasets.folder_encoding import folder_mask_files, shared_encoding, split_encoding, split_line
from segkit.datasets.folder_layout import find_layout
from segkit.datasets.mask_encoding import MaskEncoding, detect_mask_encoding
from segkit.datasets.mask_format import stored_mask_format
from segkit.datasets.mask_messages import cli_set
from segkit.datasets.mask_size import MASK_RESIZE, fit_mask, pairs_message, scan_sizes
from segkit.datasets.registry import DATASETS

_log = logging.getLogger(__name__)

__all__ = ["FolderDataset"]


def _names(paths: Sequence[Path], n: int = 5) -> str:
    shown = ", ".join(str(p) for p in paths[:n])
    return shown + (f" and {len(paths) - n} more" if len(paths) > n else "")


def _size(image_size: int | Sequence[int] | None) -> tuple[int, int] | None:
    if image_size is None:
        return None
    size = (int(image_size), int(image_size)) if isinstance(image_size, (int, np.integer)) else tuple(image_size)
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"folder: image_size must be an int or (H, W) of positive ints, got {image_size!r}")
    return int(size[0]), int(size[1])


@DATASETS.register("folder")
class FolderDataset(FileDataset):
    """Your own images and masks, matched by file stem, with the masks' encoding decided at construction.

    Layouts: a folder of images and one of masks, by the names published sets use (``images/`` + ``masks/``,
    ``image/`` + ``label/``, ``JPEGImages/`` + ``SegmentationClass/``, ``Training_Images/`` + ``Ground_Truth/``,
    ...; any case; see ``folder_layout.IMAGE_DIRS``/``MASK_DIRS``) or named by ``image_dir=``/``mask_dir=``;
    stems matched case-insensitively; masks named ``<stem>_mask`` (``_label``, ``_gt``, ``_seg``, ...) in the
    masks' folder or beside the images; ``root/train/...`` and ``root/val/...`` (``split="train"``);
    ``{root}/{split}.txt`` split lists (or VOC's ``ImageSets/Segmentation``). See the module docstring for the
    encodings and their messages.

    Args:
        root: the dataset folder.
        split: None for every image; a subfolder of ``root`` holding ``images/`` and ``masks/``; or a split list
            ``{root}/{split}.txt`` (one stem or file name per line); a path ending in ``.txt`` is read directly.
        num_classes: number of classes; None infers it from the masks (of every split of the folder, so the
            splits agree).
        class_names: names; default ``class_0 ...`` (``background``, ``foreground`` for 0/255 binary masks).
        palette: ``(K, 3)`` RGB colours: colour-coded masks, colour ``k`` is class ``k`` (other colours ->
            ``ignore_index``); with index masks only the display colours.
        ignore_index: the stored value (and class index) of ignored pixels.
        transforms: albumentations ``Compose`` (or a preset mapping); None normalises only.
        on_bad_sample: "raise" or "skip" (skip also drops images without masks at construction).
        check_files: check every pair at construction (headers, plus the values of the files read).
        mask_values: stored values in class order (``[0, 255]``: 255 is class 1); required for JPEG masks.
        mask_suffix: the masks' stem suffix (e.g. "_mask"); None detects it.
        image_dir: the images' folder, relative to ``root`` (or to the split's subfolder) or absolute; None
            finds it by name.
        mask_dir: the masks' folder, likewise; None finds it by name, else beside the images.
        mask_resize: a mask of another size than its image but the same aspect ratio: "nearest" resizes it
            (nearest neighbour, said once at construction with the count), "error" refuses it. A mask of another
            aspect ratio is always refused (or skipped).
        image_size: int or ``(H, W)``: every image is resized to it (bilinear, area when shrinking) and its mask
            too (nearest), before ``transforms``, so batches share a size.
        unlisted: a stored value not in ``mask_values``: "error", "ignore" or "nearest".
        verbose: print the encoding summary once at construction.
        mean, std: per-channel normalisation statistics in raw pixel units (a number is used for every
            channel); None: ImageNet's for 3-channel uint8 images, else computed from a sample of the
            images at construction (see ``FileDataset._init_image_format``). Multi-band TIFFs set
            ``in_channels``.

    Attributes:
        encoding: the ``MaskEncoding`` decided (``encoding.summary()`` is the printed block).
        class_pixel_share: ``(num_classes,)`` share of the pixels read per class.
        layout: the ``FolderLayout`` found.
        resized_masks: how many masks the construction scan found at another scale (resized when loaded).

    Example:
        >>> ds = FolderDataset("data/leaves", split="train", image_size=256)  # doctest: +SKIP
        folder: binary masks stored as 0/255: 2 classes, 255 -> class 1
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
        *,
        mask_values: Sequence[int] | None = None,
        mask_suffix: str | None = None,
        image_dir: str | Path | None = None,
        mask_dir: str | Path | None = None,
        mask_resize: str = "nearest",
        image_size: int | Sequence[int] | None = None,
        unlisted: str = "error",
        verbose: bool = True,
        mean: Sequence[float] | float | None = None,
        std: Sequence[float] | float | None = None,
    ) -> None:
        self.ignore_index = ignore_index  # before the transforms: their mask padding is ignore_index
        self._init_common(transforms, on_bad_sample, mean, std)
        if mask_resize not in MASK_RESIZE:
            raise ValueError(f"folder: mask_resize must be one of {MASK_RESIZE}, got {mask_resize!r}")
        self.root = Path(root)
        self.split = split
        self.ignore_index = ignore_index
        self.image_size = _size(image_size)
        self.mask_resize = mask_resize
        self.layout = find_layout(self.root, split, mask_suffix, image_dir, mask_dir)
        self.items = list(zip(self.layout.images, self.layout.masks))
        self.bad_samples.total = len(self.items)  # the share lost is said against the split as found
        self.resized_masks = 0
        if check_files:
            self._drop_missing()
        if self.layout.orphans:
            _log.warning(
                f"folder: warning: {len(self.layout.orphans)} masks have no image (left out): "
                f"{_names(self.layout.orphans, 3)}"
            )
        if self.layout.unused:
            _log.warning(
                f"folder: note: {self.layout.describe()}; also found {[str(d) for d in self.layout.unused]}, "
                "left out (image_dir= and mask_dir= choose the folders)"
            )
        if check_files:
            self._check_sizes()
        if num_classes is None and class_names is not None:
            num_classes = len(class_names)
        strict = check_files and on_bad_sample == "raise"
        decide: dict[str, Any] = {
            "num_classes": num_classes,
            "mask_values": mask_values,
            "palette": palette,
            "ignore_index": ignore_index,
            "unlisted": unlisted,
            "bad_files": "raise" if strict else "keep",
        }
        masks = [m for _, m in self.items]
        # A split is decided with the whole folder (one class count for every split; see folder_encoding).
        if split is not None:
            whole = folder_mask_files(self.root, split, self.layout.mask_suffix, image_dir, mask_dir)
        else:
            whole = []
        whole = sorted(set(whole) | {m for m in masks if m.is_file()})
        shared = split is not None and len(whole) > len({m for m in masks if m.is_file()})
        folder_block = True
        if shared:
            folder, folder_block = shared_encoding(whole, **decide)
            self.encoding: MaskEncoding = split_encoding(folder, masks, strict)
        else:
            self.encoding = detect_mask_encoding(masks, **decide)
        self.num_classes = self.encoding.num_classes
        if class_names is None:  # 0/255 masks draw one thing on a background: say so in every table
            binary = self.encoding.kind == "binary"
            class_names = ("background", "foreground") if binary else [f"class_{i}" for i in range(self.num_classes)]
        self.class_names = tuple(class_names)
        if len(self.class_names) != self.num_classes:
            raise ValueError(f"folder: {len(self.class_names)} class_names for num_classes={self.num_classes}")
        colours = None if palette is None else np.asarray(palette, np.uint8).reshape(-1, 3)
        self.colours = colours
        given = colours is not None and len(colours) == self.num_classes
        self.palette = colours if given and colours is not None else default_palette(self.num_classes)
        self.class_pixel_share = self.encoding.pixel_share
        # How the masks were stored (plain data): predictions are written back the same way.
        self.mask_format = stored_mask_format(self.encoding, next((m for m in masks if m.is_file()), None))
        if verbose and shared:  # the folder's block once per process, then one line per split
            if folder_block:
                _log.info(folder.summary(self.class_names, name=f"folder {self.root.name} (every split)"))
            _log.info(split_line(self.encoding, str(split), len(self.items), self.class_names))
        elif verbose:
            _log.info(self.encoding.summary(self.class_names, name="folder"))
        self._init_image_format()  # in_channels and dtype from the first image's header; normalization

    def _drop_missing(self) -> None:
        """Images without a mask: an error listing them, or (``on_bad_sample="skip"``) dropped with one line."""
        missing = self.layout.missing
        if not missing:
            return
        where = self.layout.describe()
        count = f"{len(missing)} of {len(self.items)} images have no label file"
        if self.layout.folder_images > len(self.items):  # a split list: the folder's count first, then the split's
            name = Path(str(self.split)).stem
            count = (
                f"{self.layout.folder_missing} of the {self.layout.folder_images} images of the folder have no label "
                f"file, {len(missing)} of them among the {len(self.items)} images of split {name!r}"
            )
        if self.on_bad_sample == "raise":
            raise BadSampleError(
                f"folder: {count} ({where}): {_names(missing)}. Remedy: add the missing masks, or pass "
                f"on_bad_sample='skip' to drop these images ({cli_set('on_bad_sample', 'skip')})"
            )
        gone = set(missing)
        self.items = [item for item in self.items if item[0] not in gone]
        self.bad_samples.report([(str(p), f"{p}: no label file") for p in missing], "images without a mask")
        if not self.items:
            raise BadSampleError(f"folder: none of the {len(missing)} images has a mask ({where})")

    def _check_sizes(self) -> None:
        """Read every pair's headers: resize masks of the image's aspect ratio, refuse (or skip) the others."""
        scan = scan_sizes(self.items)
        bad: list[tuple[Any, str]] = []
        if scan.unreadable:
            if self.on_bad_sample == "raise":
                raise BadSampleError(scan.unreadable[0][1])
            bad += scan.unreadable
        refused = scan.mismatched + (scan.rescaled if self.mask_resize == "error" else [])
        if refused and self.on_bad_sample == "raise":
            if self.mask_resize == "error":
                what, fix = "differ in size from their image", "resize them, or pass mask_resize='nearest'"
                fix += f" to resize the {len(scan.rescaled)} with their image's aspect ratio" if scan.rescaled else ""
            else:
                what = "differ in size from their image with another aspect ratio (no resize aligns them)"
                fix = "fix or remove these pairs"
                if scan.rescaled:
                    what += f"; {len(scan.rescaled)} more with the image's aspect ratio would be resized"
            fix += f", or pass on_bad_sample='skip' to drop them ({cli_set('on_bad_sample', 'skip')})"
            raise BadSampleError("folder: " + pairs_message(refused, scan.total, what, fix))
        bad += [((i, m), f"{m}: label size {hm[1]}x{hm[0]} differs from image {i} ({hi[1]}x{hi[0]})")
                for i, m, hi, hm in refused]  # fmt: skip
        if bad:
            gone = {str(item[0]) for item, _ in bad}
            self.items = [item for item in self.items if str(item[0]) not in gone]
            self.bad_samples.report([(str(item[0]), reason) for item, reason in bad], "unusable pairs")
            if not self.items:
                raise BadSampleError(f"folder: none of the {scan.total} pairs is usable ({self.layout.describe()})")
        if scan.rescaled and self.mask_resize == "nearest":
            self.resized_masks = len(scan.rescaled)
            _log.warning(scan.resize_line("folder"))

    @property
    def input_size(self) -> tuple[int, int] | None:
        """``(H, W)`` every image is resized to before the model sees it (``image_size``), or None: checkpoints
        record it, and ``Predictor`` resizes new images the same way."""
        return self.image_size

    def read_image(self, path: Path) -> np.ndarray:
        """Decode one image file (``(H, W, C)``); override to read other formats."""
        return read_image(path)

    def load_raw(self, index: int) -> tuple[np.ndarray, np.ndarray | None, None]:
        image_path, mask_path = self.items[index]
        if not Path(mask_path).is_file():
            raise BadSampleError(f"{image_path}: no mask (expected {mask_path})")
        image, stored = self.read_image(image_path), read_mask(mask_path)
        if stored.shape[:2] != image.shape[:2] and self.mask_resize == "nearest":
            stored = fit_mask(stored, image.shape[:2], mask_path, image_path)
        check_decoded(image, stored, image_path, mask_path)
        mask = self.encoding.decode(stored, mask_path)
        if self.image_size is not None and image.shape[:2] != self.image_size:
            h, w = self.image_size
            shrink = h <= image.shape[0] and w <= image.shape[1]
            channels = image.shape[2:]
            image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
            image = image.reshape(h, w, *channels)  # cv2 drops a single channel's axis
            mask = cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST)
        return image, mask, None
