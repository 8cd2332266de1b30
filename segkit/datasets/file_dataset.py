"""The base class of the datasets that read files, with ``on_bad_sample`` and the checks that name the file."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from segkit.datasets.bad_samples import BadSampleError, BadSampleLog
from segkit.datasets.base import SegmentationDataset, to_sample
from segkit.datasets.decoding import ImageInfo, image_info, image_size
from segkit.datasets.instance_targets import instance_sample
from segkit.datasets.normalization import Normalization, resolve_normalization
from segkit.datasets.tiff import is_tiff

__all__ = ["FileDataset", "check_decoded", "check_items", "check_pair"]


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
        self.transforms = build_transforms(transforms, name=type(self).__name__, ignore_index=self.ignore_index)
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
        from segkit.datasets.dataset_stats import channel_stats

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
                spec,
                self.normalization,
                self.image_dtype,
                name=type(self).__name__,
                quiet=not announce,
                ignore_index=self.ignore_index,
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
                if self.bad_samples.total is None:
                    self.bad_samples.total = n
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
    ``items`` and reported in ``log`` in one line, with the total and the share of the data lost.
    """
    if log.total is None:
        log.total = len(items)
    bad: list[tuple[Any, str]] = []
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
            bad.append((item, str(exc)))
    if bad:
        log.report([(str(item[0]), reason) for item, reason in bad], "unreadable or mismatched samples")
        gone = {id(item) for item, _ in bad}
        items[:] = [item for item in items if id(item) not in gone]


def check_decoded(image: np.ndarray, mask: np.ndarray, image_path: str | Path, mask_path: str | Path) -> None:
    """Raise ``BadSampleError`` if decoded image and mask differ in size."""
    if image.shape[:2] != mask.shape[:2]:
        raise BadSampleError(
            f"{mask_path}: label size {mask.shape[1]}x{mask.shape[0]} differs from image {image_path} "
            f"({image.shape[1]}x{image.shape[0]})"
        )
