"""File-backed datasets: fast decoding, checks that name the file, label tables and ``on_bad_sample``."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from segkit.datasets.base import SegmentationDataset, to_sample
from segkit.datasets.normalization import Normalization, resolve_normalization
from segkit.datasets.shapes import instance_target
from segkit.datasets.tiff import ImageInfo, is_tiff, read_tiff, tiff_info

__all__ = [
    "BadSampleError",
    "BadSampleLog",
    "check_items",
    "FileDataset",
    "ImageInfo",
    "LabelTable",
    "image_info",
    "image_size",
    "read_image",
    "read_mask",
    "rgb_to_index",
]

# Decoding in the loader processes must not fight the DataLoader for cores.
cv2.setNumThreads(0)


class BadSampleError(ValueError):
    """A sample file that cannot be used; the message names the file and the reason."""


# OpenCV >= 4.10 decodes straight to RGB (same pixels, no separate BGR->RGB pass); older ones decode BGR.
_DECODE_RGB: int = getattr(cv2, "IMREAD_COLOR_RGB", cv2.IMREAD_COLOR)


class _MissingFileError(BadSampleError, FileNotFoundError):
    """A file that does not exist: a bad sample for the datasets, a ``FileNotFoundError`` for everyone else."""


def read_image(path: str | Path) -> np.ndarray:
    """Decode an image file: ``(H, W, 3)`` uint8 RGB, or for TIFF files ``(H, W, C)`` as stored.

    TIFF files (``.tif``/``.tiff``, read with ``tifffile``) keep their bands and pixel type: uint8,
    uint16 and float32 as stored, other types as float32. A 2-D TIFF is one channel ``(H, W, 1)``.
    A 3-D TIFF is band-first ``(C, H, W)`` (and transposed to ``(H, W, C)``) when tifffile's axes
    say so (``SYX``: separate sample planes), channels-last when they say ``YXS``, and otherwise when
    its first axis is strictly shorter than the two others (a stack of C pages of ``H x W``).

    Other formats (PNG, JPEG, ...) are decoded with OpenCV (faster than PIL here) as uint8 RGB, grey
    and RGBA images included. Truncated JPEGs (which OpenCV would decode partially with a warning
    only) and undecodable files raise ``BadSampleError`` naming the file; a missing file raises one
    that is also a ``FileNotFoundError``.

    Returns:
        ``(H, W, C)`` array.
    """
    if is_tiff(path):
        with _tiff_errors(path):
            return read_tiff(path)
    data = _read_bytes(path)
    if data[:2].tobytes() == b"\xff\xd8" and b"\xff\xd9" not in data[-64:].tobytes():
        # No end-of-image marker near the end: truncated, or a trailer after it (some cameras add one).
        # PIL tells them apart: it raises on a truncated stream.
        from PIL import Image

        try:
            with Image.open(path) as im:
                return np.asarray(im.convert("RGB"))
        except OSError as exc:
            raise BadSampleError(f"{path}: truncated or corrupt JPEG ({exc})") from None
    # Labels are drawn on the stored pixels: never rotate by EXIF orientation (PIL and pycocotools do not).
    image = cv2.imdecode(data, _DECODE_RGB | cv2.IMREAD_IGNORE_ORIENTATION)
    if image is None:
        raise BadSampleError(f"{path}: corrupt or unsupported image file (could not decode)")
    return image if _DECODE_RGB != cv2.IMREAD_COLOR else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_mask(path: str | Path) -> np.ndarray:
    """Decode a label image: ``(H, W)`` indices for greyscale/16-bit/palette PNGs, ``(H, W, 3)`` RGB otherwise.

    Palette ("P" mode) PNGs are read as their indices, never as colours (OpenCV would expand them).
    """
    data = _read_bytes(path)
    # PNG colour type 3 (IHDR byte 25) = palette: decode with PIL to keep the indices.
    if data[:8].tobytes() == b"\x89PNG\r\n\x1a\n" and data.size > 25 and data[25] == 3:
        from PIL import Image

        try:
            with Image.open(path) as im:
                return np.asarray(im)
        except OSError as exc:
            raise BadSampleError(f"{path}: corrupt label file ({exc})") from None
    mask = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if mask is None:
        raise BadSampleError(f"{path}: corrupt or unsupported label file (could not decode)")
    if mask.ndim == 3:
        return cv2.cvtColor(mask, cv2.COLOR_BGRA2RGB if mask.shape[2] == 4 else cv2.COLOR_BGR2RGB)
    return mask


def image_info(path: str | Path) -> ImageInfo:
    """Return ``ImageInfo(height, width, channels, dtype)`` of ``read_image(path)`` from the file header only.

    TIFF headers are read with ``tifffile`` (no pixels decoded); other formats with PIL, and they
    always decode to 3-channel uint8.
    """
    if is_tiff(path):
        with _tiff_errors(path):
            return tiff_info(path)
    from PIL import Image

    try:
        with Image.open(path) as im:
            w, h = im.size
    except FileNotFoundError:
        raise _MissingFileError(f"{path}: cannot read (No such file or directory)") from None
    except OSError as exc:
        raise BadSampleError(f"{path}: corrupt or unsupported image file ({exc})") from None
    return ImageInfo(h, w, 3, np.dtype(np.uint8))


@contextlib.contextmanager
def _tiff_errors(path: str | Path) -> Iterator[None]:
    """The TIFF reader's errors as the ``BadSampleError`` every file dataset handles."""
    try:
        yield
    except FileNotFoundError:
        raise _MissingFileError(f"{path}: cannot read (No such file or directory)") from None
    except ValueError as exc:
        raise BadSampleError(str(exc)) from None


def image_size(path: str | Path) -> tuple[int, int]:
    """Return ``(H, W)`` from the file header only (cheap; used to check pairs at construction)."""
    info = image_info(path)
    return info.height, info.width


def _read_bytes(path: str | Path) -> np.ndarray:
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except FileNotFoundError as exc:
        raise _MissingFileError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except OSError as exc:
        raise BadSampleError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if data.size == 0:
        raise BadSampleError(f"{path}: empty file")
    return data


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


class BadSampleLog:
    """The bad files met with ``on_bad_sample="skip"``: each printed once with its reason, counted per epoch.

    Each dataset holds one as ``dataset.bad_samples`` and fills it in the process that loads the
    sample. With DataLoader workers, the skipped files also travel in the batch under the key
    ``"bad_samples"`` (a list of ``(path, reason)``), so the main process sees them too::

        for batch in loader:
            log.update(batch.get("bad_samples", ()))   # prints each new file once
        print(log.end_epoch())                         # "3 bad samples skipped this epoch"
    """

    def __init__(self, name: str = "dataset") -> None:
        self.name = name
        self.reasons: dict[str, str] = {}
        self.epoch_count = 0
        self._epoch_seen: set[str] = set()

    def update(self, items: Iterable[tuple[str, str]], echo: bool = True) -> None:
        """Record ``(path, reason)`` pairs; print each file the first time it is seen."""
        for path, reason in items:
            if path not in self.reasons:
                self.reasons[path] = reason
                if echo:
                    print(f"{self.name}: skipped bad sample {reason}", file=sys.stderr)
            if path not in self._epoch_seen:
                self._epoch_seen.add(path)
                self.epoch_count += 1

    def end_epoch(self) -> str:
        """Return the epoch's summary line and reset the epoch counter."""
        line = f"{self.name}: {self.epoch_count} bad samples skipped this epoch ({len(self.reasons)} in total)"
        self.epoch_count = 0
        self._epoch_seen = set()
        return line

    def __len__(self) -> int:
        return len(self.reasons)


class FileDataset(SegmentationDataset):
    """Base class of the loaders that read files: ``load(index)`` plus error handling.

    Subclasses fill ``self.items`` (one entry per sample; ``item_path(i)`` names its image) and
    implement ``load_raw(index) -> (image, mask, instances)`` where ``instances`` is None or a dict
    with ``masks`` (list of ``(H, W)`` uint8), ``labels``, ``iscrowd`` and optionally ``boxes``.

    Errors are raised as ``BadSampleError`` naming the file and the sample index, so a DataLoader
    worker's traceback says which sample failed. With ``on_bad_sample="skip"`` a bad sample is
    replaced by the next good one (batches keep their size), recorded in ``bad_samples`` and
    attached to the sample under ``"bad_samples"``.

    Attributes:
        in_channels: channels of the images (3 unless ``_init_image_format`` read another count).
        image_dtype: their pixel type as stored ("uint8", "uint16", "float32").
        normalization: the ``Normalization`` applied to samples (raw pixel units; ImageNet for uint8 RGB).
        normalization_source: "default" (ImageNet), "given" (``mean=``/``std=``) or "computed" (from the images).
    """

    items: list[Any]
    transforms: Callable[..., dict[str, Any]] | None = None
    in_channels: int = 3
    image_dtype: str = "uint8"
    normalization: Normalization = Normalization.imagenet()
    normalization_source: str = "default"

    def _init_common(
        self,
        transforms: Callable[..., dict[str, Any]] | None,
        on_bad_sample: str,
        mean: Sequence[float] | float | None = None,
        std: Sequence[float] | float | None = None,
    ) -> None:
        if on_bad_sample not in ("raise", "skip"):
            raise ValueError(f"{type(self).__name__}: on_bad_sample must be 'raise' or 'skip', got {on_bad_sample!r}")
        if (mean is None) != (std is None):
            raise ValueError(f"{type(self).__name__}: give both mean= and std= (raw pixel units, one per channel)")
        from segkit.datasets.transforms import build_transforms

        # A mapping (from a YAML config) names a preset's options; callables pass through. The preset is
        # built again with the data's own statistics once the images are known (_init_image_format).
        self._transforms_spec = transforms
        self.transforms = build_transforms(transforms)
        self._given_stats = None if mean is None or std is None else (mean, std)
        self.on_bad_sample = on_bad_sample
        self.bad_samples = BadSampleLog(type(self).__name__)

    def _init_image_format(self, max_images: int = 32) -> None:
        """Set ``in_channels`` and ``image_dtype`` from the first image's header and settle ``normalization``.

        Called at the end of a subclass's constructor (once ``items`` is filled). Statistics given as
        ``mean=``/``std=`` are checked against the channel count; without them, 3-channel uint8
        images take ImageNet's, and other images (16-bit, float, multi-band) statistics computed from
        up to ``max_images`` of the dataset's images, evenly spread, said in one line (``segkit
        inspect`` prints them over the whole set; pass them as ``mean=``/``std=`` to fix them).

        Args:
            max_images: images read to compute statistics.

        Raises:
            ValueError: given statistics whose length is not the channel count.
        """
        if not self.items:
            return
        info = self._first_image_info()
        self.in_channels, self.image_dtype = info.channels, info.dtype.name
        from segkit.datasets.inspect import channel_stats

        norm, self.normalization_source = resolve_normalization(
            type(self).__name__,
            info.channels,
            info.dtype,
            self._given_stats,
            lambda: channel_stats(self, max_images=max_images),
            (min(len(self.items), max_images), len(self.items)),
        )
        self.set_normalization(norm, announce=True)

    def _first_image_info(self) -> ImageInfo:
        """The channels and pixel type of the first readable image (non-TIFF files are RGB: no file read)."""
        for index in range(len(self.items)):
            path = self.item_path(index)
            if not is_tiff(path):
                return ImageInfo(0, 0, 3, np.dtype(np.uint8))
            try:
                return image_info(path)
            except BadSampleError:
                if self.on_bad_sample == "raise":
                    raise
        raise BadSampleError(f"{type(self).__name__}: no readable image among the {len(self.items)} files")

    def set_normalization(self, normalization: Normalization | Mapping[str, Any], announce: bool = False) -> None:
        """Normalise this dataset's samples with ``normalization`` (raw pixel units), e.g. the training data's.

        A transforms preset given as a mapping is rebuilt with these statistics (and without colour
        jitter unless the images are 3-channel uint8); a transforms callable is left as it is.

        Args:
            normalization: a ``Normalization`` or a ``{"mean", "std"}`` mapping.
            announce: print the preset's notes (once, at construction).
        """
        from segkit.datasets.transforms import build_transforms

        self.normalization = Normalization.coerce(normalization)
        spec = getattr(self, "_transforms_spec", None)
        if isinstance(spec, Mapping):
            self.transforms = build_transforms(
                spec, self.normalization, self.image_dtype, name=type(self).__name__, quiet=not announce
            )

    def __len__(self) -> int:
        return len(self.items)

    def item_path(self, index: int) -> str:
        """The image path of sample ``index``."""
        item = self.items[index]
        return str(item[0] if isinstance(item, (tuple, list)) else item)

    def load_raw(self, index: int) -> tuple[np.ndarray, np.ndarray | None, dict[str, Any] | None]:
        """Return the untransformed ``(image, mask, instances)`` of sample ``index``."""
        raise NotImplementedError

    def __getitem__(self, index: int) -> dict[str, Any]:
        skipped: list[tuple[str, str]] = []
        n = len(self.items)
        for attempt in range(n):
            i = (index + attempt) % n
            try:
                sample = self._load_sample(i)
            except BadSampleError as exc:
                if self.on_bad_sample == "raise":
                    raise BadSampleError(f"{exc} [sample {i} of {type(self).__name__}]") from None
                skipped.append((self.item_path(i), str(exc)))
                continue
            except Exception as exc:
                # Not a file problem (a transform, a bug): kept as is, but the traceback a DataLoader
                # worker forwards then names the sample, not only the worker.
                note = f"while loading sample {i} ({self.item_path(i)}) of {type(self).__name__}"
                if hasattr(exc, "add_note"):  # Python >= 3.11
                    exc.add_note(note)
                raise
            if skipped:
                self.bad_samples.update(skipped)
                sample["bad_samples"] = skipped
            return sample
        raise BadSampleError(f"{type(self).__name__}: every one of the {n} samples is bad; first: {skipped[0][1]}")

    def _load_sample(self, index: int) -> dict[str, Any]:
        image, mask, inst = self.load_raw(index)
        path = self.item_path(index)
        if inst is None:
            return to_sample(image, mask, self.transforms, path, normalization=self.normalization)
        return instance_sample(image, mask, inst, self.transforms, path, index)


def check_pair(image_path: str | Path, mask_path: str | Path) -> None:
    """Raise ``BadSampleError`` if the mask is missing or its size differs from the image's (headers only)."""
    if not Path(mask_path).is_file():
        raise BadSampleError(f"{image_path}: no label file (expected {mask_path})")
    hi, hm = image_size(image_path), image_size(mask_path)
    if hi != hm:
        raise BadSampleError(
            f"{mask_path}: label size {hm[1]}x{hm[0]} differs from image {image_path} ({hi[1]}x{hi[0]})"
        )


def check_items(items: list[Any], on_bad_sample: str, log: BadSampleLog, cols: Sequence[int] = (1,)) -> None:
    """Check every ``(image, label, ...)`` item at construction (labels in columns ``cols``), in place.

    With "raise" the first bad item raises ``BadSampleError``; with "skip" bad items are removed from
    ``items`` and each is reported once in ``log``.
    """
    bad = []
    for item in items:
        try:
            if not Path(item[0]).is_file():
                raise BadSampleError(f"{item[0]}: image file does not exist")
            for col in cols:
                check_pair(item[0], item[col])
            continue
        except BadSampleError as exc:
            if on_bad_sample == "raise":
                raise
            bad.append(item)
            log.update([(str(item[0]), str(exc))])
    for item in bad:
        items.remove(item)


def check_decoded(image: np.ndarray, mask: np.ndarray, image_path: str | Path, mask_path: str | Path) -> None:
    """Raise ``BadSampleError`` if decoded image and mask differ in size."""
    if image.shape[:2] != mask.shape[:2]:
        raise BadSampleError(
            f"{mask_path}: label size {mask.shape[1]}x{mask.shape[0]} differs from image {image_path} "
            f"({image.shape[1]}x{image.shape[0]})"
        )


def instance_sample(
    image: np.ndarray,
    mask: np.ndarray | None,
    inst: dict[str, Any],
    transforms: Callable[..., dict[str, Any]] | None,
    path: str,
    image_id: int,
) -> dict[str, Any]:
    """Transform image, semantic mask and instance masks together and build the detection target.

    Instance masks are 0/1; after the transform an instance is the pixels equal to 1 (padding
    filled with ``ignore_index`` is not part of it), so boxes are recomputed from the transformed
    masks and instances that left the crop are dropped, keeping boxes, labels, masks, ``area``
    and ``iscrowd`` consistent. Without a transform, given ``boxes`` (e.g. COCO's) are kept.
    """
    masks: list[np.ndarray] = list(inst["masks"])
    labels = list(inst["labels"])
    iscrowd = list(inst.get("iscrowd", [0] * len(labels)))
    boxes = inst.get("boxes")
    if transforms is not None:
        kwargs: dict[str, Any] = {"image": image}
        if mask is not None:
            kwargs["mask"] = mask
        if masks:
            kwargs["masks"] = masks
        out = transforms(**kwargs)
        image, mask = out["image"], out.get("mask", mask)
        masks = [np.asarray(m) == 1 for m in out.get("masks", [])]
        boxes = None
    else:
        masks = [np.asarray(m) == 1 for m in masks]
    keep = [i for i, m in enumerate(masks) if m.any()] if boxes is None else list(range(len(masks)))
    masks_k, labels_k = [masks[i] for i in keep], [labels[i] for i in keep]
    if not masks_k:
        # No instance (none annotated, or all left the crop): an all-zero mask keeps the (0, H, W) shape.
        h, w = np.asarray(image).shape[:2] if not isinstance(image, torch.Tensor) else image.shape[-2:]
        masks_k, labels_k = [np.zeros((h, w), bool)], [0]
    target = instance_target(masks_k, labels_k, image_id)
    if boxes is not None and keep:
        # instance_target drops empty masks; given boxes are kept only where masks are not empty.
        nonempty = [i for i in keep if masks[i].any()]
        target["boxes"] = torch.as_tensor(np.asarray(boxes, np.float32)[nonempty].reshape(-1, 4))
        target["iscrowd"] = torch.as_tensor([iscrowd[i] for i in nonempty], dtype=torch.int64)
    else:
        target["iscrowd"] = torch.as_tensor([iscrowd[i] for i in keep if masks[i].any()], dtype=torch.int64)
    return to_sample(image, mask, None, path, target=target)
