"""Per-channel image normalisation as data: statistics in raw pixel units, applied alike in training and prediction."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from segkit.datasets.base import IMAGENET_MEAN, IMAGENET_STD

_log = logging.getLogger(__name__)

__all__ = ["Normalization", "pixel_range", "resolve_normalization", "share_normalization", "transforms_normalization"]


def pixel_range(dtype: Any) -> float:
    """The value that maps to 1.0 when an image of ``dtype`` is scaled: 255 (uint8), 65535 (uint16), 1 otherwise.

    Other dtypes are read as float32 (see ``segkit.datasets.decoding.read_image``), whose range is 1.
    """
    dt = np.dtype(dtype)
    return float(np.iinfo(dt).max) if dt in (np.uint8, np.uint16) else 1.0


@dataclass(frozen=True)
class Normalization:
    """Per-channel ``(x - mean) / std``, with ``mean`` and ``std`` in raw pixel units.

    The statistics are those of the training images as stored on disk (for uint8 RGB the default
    is ImageNet's, ``mean * 255`` and ``std * 255``), so one object normalises training samples,
    validation samples and new images in ``Predictor`` the same way, and it is stored in checkpoints
    as ``to_dict()``.

    Args:
        mean: one value per channel, raw pixel units.
        std: one value per channel, raw pixel units, each > 0.
        dtype: the pixel type of the training images ("uint8", "uint16", "float32"), or None when
            unknown (then new images of any type are accepted).

    Raises:
        ValueError: ``mean`` and ``std`` differ in length, are empty, or a ``std`` is not > 0.

    Example:
        >>> norm = Normalization((1200.0, 900.0, 800.0, 2500.0), (300.0, 250.0, 240.0, 600.0), "uint16")
        >>> x = norm.apply(image)     # (H, W, 4) uint16 -> (H, W, 4) float32
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]
    dtype: str | None = "uint8"

    def __post_init__(self) -> None:
        mean = tuple(float(v) for v in np.asarray(self.mean, np.float64).reshape(-1))
        std = tuple(float(v) for v in np.asarray(self.std, np.float64).reshape(-1))
        if not mean or len(mean) != len(std):
            raise ValueError(f"normalization: mean has {len(mean)} values and std {len(std)}; give one per channel")
        if not all(np.isfinite(mean)) or not all(s > 0 and np.isfinite(s) for s in std):
            raise ValueError(f"normalization: mean must be finite and every std > 0, got mean={mean} std={std}")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)
        object.__setattr__(self, "dtype", None if self.dtype is None else np.dtype(self.dtype).name)

    @classmethod
    def imagenet(cls) -> Normalization:
        """ImageNet statistics for uint8 RGB: ``mean * 255``, ``std * 255`` (what pretrained encoders expect)."""
        return cls(tuple(m * 255 for m in IMAGENET_MEAN), tuple(s * 255 for s in IMAGENET_STD), "uint8")

    @classmethod
    def coerce(cls, value: Normalization | Mapping[str, Any] | None) -> Normalization:
        """A ``Normalization`` from itself, a ``{"mean", "std"[, "dtype"]}`` mapping (a checkpoint's), or None (ImageNet).

        A mapping without ``dtype`` leaves the pixel type unchecked.
        """
        if value is None:
            return cls.imagenet()
        if isinstance(value, Normalization):
            return value
        if isinstance(value, Mapping) and "mean" in value and "std" in value:
            return cls(tuple(value["mean"]), tuple(value["std"]), value.get("dtype"))
        raise TypeError(f"normalization: expected a Normalization or a {{'mean', 'std'}} mapping, got {value!r}")

    @property
    def channels(self) -> int:
        """Number of channels."""
        return len(self.mean)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for checkpoints (loadable with ``weights_only=True``): ``{"mean": [...], "std": [...], "dtype": ...}``."""
        return {"mean": list(self.mean), "std": list(self.std), "dtype": self.dtype}

    def albumentations_kwargs(self, dtype: Any) -> dict[str, Any]:
        """``A.Normalize`` arguments (``mean``, ``std`` in units of ``max_pixel_value``) for images of ``dtype``."""
        k = pixel_range(dtype)
        return {"mean": tuple(m / k for m in self.mean), "std": tuple(s / k for s in self.std), "max_pixel_value": k}

    def apply(self, image: np.ndarray) -> np.ndarray:
        """Normalise an ``(H, W, C)`` image of any dtype to float32.

        Integer images are divided by their range first (``pixel_range``) and the statistics with
        them: the same numbers as ``(x - mean) / std``, and for uint8 RGB with ImageNet statistics
        bit for bit the ``x / 255``-then-ImageNet values segkit has always produced.

        Raises:
            ValueError: the image does not have ``channels`` channels.
        """
        arr = np.asarray(image)
        if arr.ndim == 2:
            arr = arr[..., None]
        if arr.ndim != 3 or arr.shape[2] != self.channels:
            raise ValueError(
                f"normalization: the image has shape {arr.shape}; the statistics are for {self.channels} channels"
            )
        k = pixel_range(arr.dtype)
        x = arr.astype(np.float32)
        mean = np.asarray([m / k for m in self.mean], np.float32)
        std = np.asarray([s / k for s in self.std], np.float32)
        if k != 1.0:
            x /= np.float32(k)
        return (x - mean) / std

    def to_display(self, image: torch.Tensor) -> np.ndarray:
        """Undo the normalisation of a ``(C, H, W)`` tensor for display: ``(H, W, 3)`` uint8.

        uint8 images come back as their pixels (the first 3 channels, or the first one repeated);
        other images (16-bit, float, multi-band) show their first 3 channels, each stretched from
        its minimum to its maximum over the image.
        """
        x = image.detach().float().cpu()
        c = min(3, x.shape[0])
        mean = torch.tensor(self.mean[:c], dtype=torch.float32).view(c, 1, 1)
        std = torch.tensor(self.std[:c], dtype=torch.float32).view(c, 1, 1)
        raw = x[:c] * std + mean
        if raw.shape[0] < 3:
            raw = raw[:1].expand(3, -1, -1)
        if self.dtype == "uint8":
            rgb = raw.clamp(0, 255)
        else:
            flat = raw.reshape(3, -1)
            low, high = flat.min(1).values.view(3, 1, 1), flat.max(1).values.view(3, 1, 1)
            rgb = (raw - low) / (high - low).clamp_min(1e-12) * 255
        return (rgb + 0.5).to(torch.uint8).permute(1, 2, 0).numpy()

    def check_image(self, image: np.ndarray, what: str = "predict") -> np.ndarray:
        """Return ``image`` as ``(H, W, C)`` when it matches the training images, else raise a clear error.

        A 2-D image is one channel; a 1-channel image is repeated for a 3-channel (RGB) model and the
        alpha channel of a uint8 RGBA image is dropped, as image viewers do. Integer images must have
        the training dtype (a uint8 photo given to a model trained on uint16 bands would be misread);
        a model trained on float images takes any numeric image, read as float32.

        Raises:
            ValueError: wrong channel count or pixel type; the message says what training used.
        """
        arr = np.asarray(image)
        if arr.ndim == 2:
            arr = arr[..., None]
        if arr.ndim == 3 and self.channels == 3 and arr.shape[2] == 1:
            arr = np.repeat(arr, 3, axis=2)
        elif arr.ndim == 3 and self.channels == 3 and arr.shape[2] == 4 and arr.dtype == np.uint8:
            arr = arr[..., :3]
        if arr.ndim != 3 or arr.shape[2] != self.channels:
            kind = "an (H, W, 3) RGB image" if self.channels == 3 else f"an (H, W, {self.channels}) image"
            raise ValueError(
                f"{what}: expected {kind} (the model was trained on {self.channels}-channel images), "
                f"got shape {arr.shape}"
            )
        if self.dtype in ("uint8", "uint16") and arr.dtype != np.dtype(self.dtype):
            raise ValueError(
                f"{what}: expected a {self.dtype} image array (the training images were {self.dtype}), got "
                f"{arr.dtype}; convert it, or pass a tensor normalised like the training data"
            )
        if self.dtype not in (None, "uint8", "uint16") and arr.dtype not in (np.uint8, np.uint16, np.float32):
            arr = arr.astype(np.float32)
        return arr


def resolve_normalization(
    name: str,
    channels: int,
    dtype: Any,
    given: tuple[Any, Any] | None,
    compute: Callable[[], tuple[np.ndarray, np.ndarray]],
    counts: tuple[int, int],
) -> tuple[Normalization, str]:
    """A dataset's statistics: the given ones, ImageNet's for 3-channel uint8 images, or computed ones.

    Computed statistics (16-bit, float or multi-band images without ``mean=``/``std=``) are said in
    one line; a constant band gets std 1 (centred, never divided by zero).

    Args:
        name: the dataset, named in messages.
        channels, dtype: of its images.
        given: ``(mean, std)`` as the user gave them (a number is used for every channel), or None.
        compute: returns ``(mean, std)`` from the images; called only when needed.
        counts: ``(images used by compute, images in the dataset)``, for the message.

    Returns:
        ``(normalization, source)``, source "given", "default" or "computed".

    Raises:
        ValueError: given statistics whose length is not ``channels``, or a std that is not > 0.
    """
    dtype = np.dtype(dtype)
    if given is not None:
        mean, std = (as_sequence(v, channels, f"{name}: {k}") for k, v in zip(("mean", "std"), given))
        return Normalization(mean or (), std or (), dtype.name), "given"
    if channels == 3 and dtype == np.uint8:
        return Normalization.imagenet(), "default"
    mean_arr, std_arr = compute()
    norm = Normalization(tuple(mean_arr), tuple(np.where(std_arr > 0, std_arr, 1.0)), dtype.name)
    _log.info(
        f"{name}: {channels}-channel {dtype.name} images; normalisation computed from {counts[0]} of {counts[1]} "
        f"images: mean {_fmt(norm.mean)} std {_fmt(norm.std)} (raw pixel units; pass mean=/std= to fix them, "
        f"`segkit inspect` gives them over the whole set)"
    )
    return norm, "computed"


def _fmt(values: Sequence[float]) -> str:
    return "[" + ", ".join(f"{v:.4g}" for v in values) + "]"


def transforms_normalization(transforms: Any, dtype: Any = "uint8") -> Normalization | None:
    """The statistics an albumentations pipeline normalises with, in raw pixel units, or None when it has no
    ``Normalize`` step (the dataset's own ``normalization`` then applies to its integer output).

    A user's ``transforms=`` with its own ``A.Normalize`` trains with that step's statistics, so these are
    what a checkpoint must record for ``Predictor``, ``segkit predict`` and ONNX to see images as training did.

    Args:
        transforms: an albumentations ``Compose`` (nested ``Compose``/``OneOf`` looked through), any other
            callable, or None.
        dtype: the pixel type of the dataset's images (the statistics are stored for it).

    Returns:
        A ``Normalization`` (``mean * max_pixel_value``, ``std * max_pixel_value``), or None.

    Raises:
        ValueError: a ``Normalize`` step that normalises each image by its own statistics
            (``normalization="image"``, ``"min_max"``...), which no fixed statistics can reproduce, or two
            ``Normalize`` steps; the message says how to pass the statistics instead.
    """
    steps = [t for t in _pipeline_steps(transforms) if type(t).__name__ == "Normalize" and hasattr(t, "mean")]
    if not steps:
        return None
    if len(steps) > 1:
        raise ValueError(f"transforms: {len(steps)} Normalize steps; keep one (segkit records one normalisation "
                         "for prediction and ONNX)")  # fmt: skip
    step = steps[0]
    mode = getattr(step, "normalization", "standard")
    if mode != "standard" or step.mean is None or step.std is None:
        raise ValueError(
            f"transforms: A.Normalize(normalization={mode!r}) scales each image by its own statistics, which "
            "Predictor, `segkit predict` and ONNX cannot reproduce from fixed numbers. Use "
            "A.Normalize(mean=..., std=..., max_pixel_value=...) (normalization='standard'), or leave Normalize out "
            "and pass mean=/std= (raw pixel units) to the dataset"
        )
    k = float(step.max_pixel_value if step.max_pixel_value is not None else 1.0)
    mean = np.atleast_1d(np.asarray(step.mean, np.float64)) * k
    std = np.atleast_1d(np.asarray(step.std, np.float64)) * k
    return Normalization(tuple(mean), tuple(std), np.dtype(dtype or "uint8").name)


def _pipeline_steps(transforms: Any, depth: int = 0) -> list[Any]:
    """Every step of an albumentations pipeline, nested compositions flattened."""
    children = getattr(transforms, "transforms", None)
    if depth > 8 or children is None or isinstance(transforms, type):
        return [] if transforms is None else [transforms]
    return [step for child in children for step in _pipeline_steps(child, depth + 1)]


def share_normalization(
    dataset: Any, normalization: Normalization | None, name: str = "val data", strict: str | None = None
) -> None:
    """Give ``dataset`` the training ``normalization`` unless its own statistics were given explicitly.

    A model is trained with one normalisation: validation data whose statistics were defaulted or
    computed from its own images is switched to the training ones (``set_normalization``); a dataset
    given other statistics explicitly is left alone, with a warning. ``torch.utils.data.Subset`` is
    looked through.

    Args:
        dataset: the dataset (or a wrapper with ``.dataset``), or None.
        normalization: the training statistics, or None (nothing to share).
        name: how the dataset is named in the warning.
        strict: the source of ``normalization`` (e.g. a checkpoint file): a dataset given other statistics
            explicitly is then an error naming both, not a warning (``segkit evaluate``: the checkpoint's
            statistics are the model's).

    Raises:
        ValueError: with ``strict``, the dataset was given other statistics.
    """
    inner = getattr(dataset, "dataset", dataset)
    current = getattr(inner, "normalization", None)
    if normalization is None or current is None or not callable(getattr(inner, "set_normalization", None)):
        return
    if Normalization.coerce(current) == normalization:
        return
    if getattr(inner, "normalization_source", "default") == "given":
        if strict:
            raise ValueError(
                f"{name}: mean=/std= give {Normalization.coerce(current)}, but the model was trained with "
                f"{normalization} ({strict}); drop mean=/std= (the model's statistics are used) or give those"
            )
        import warnings

        warnings.warn(
            f"{name}: its normalisation {Normalization.coerce(current)} differs from the training data's "
            f"{normalization}; the model will see differently scaled images",
            stacklevel=2,
        )
        return
    inner.set_normalization(normalization)


def as_sequence(value: Sequence[float] | float | None, channels: int, name: str) -> tuple[float, ...] | None:
    """``value`` as one float per channel (a single number is repeated), or None."""
    if value is None:
        return None
    values = np.atleast_1d(np.asarray(value, np.float64)).reshape(-1)
    if values.size == 1:
        values = np.repeat(values, channels)
    if values.size != channels:
        raise ValueError(f"{name}: {values.size} values for {channels}-channel images; give one per channel")
    return tuple(float(v) for v in values)
