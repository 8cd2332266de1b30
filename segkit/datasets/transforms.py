"""albumentations presets for training and evaluation (semantic and instance tasks).

albumentations (and the cv2 it brings) is imported when a preset pipeline is built, not with this
module: ``import segkit`` stays cheap for users who predict, export or bring their own transforms.
"""

from __future__ import annotations

import inspect
import logging
import os
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from segkit.datasets.base import IMAGENET_MEAN, IMAGENET_STD

_log = logging.getLogger(__name__)

if TYPE_CHECKING:
    import albumentations as A

    from segkit.datasets.normalization import Normalization

__all__ = [
    "PRESETS",
    "MaskFillWarning",
    "build_transforms",
    "eval_transforms",
    "instance_eval_transforms",
    "instance_train_transforms",
    "mask_fill_problems",
    "train_transforms",
]


class MaskFillWarning(UserWarning):
    """A user's albumentations step fills new mask pixels with another value than the dataset's ``ignore_index``."""


# cv2.BORDER_CONSTANT, written out so that inspecting a pipeline needs no cv2 import.
_BORDER_CONSTANT = 0


def _albumentations() -> ModuleType:
    """albumentations, imported on first use (its update check is switched off first)."""
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    import albumentations

    return albumentations


def train_transforms(
    crop_size: int | tuple[int, int],
    scale: tuple[float, float] = (0.5, 2.0),
    hflip: float = 0.5,
    color_jitter: float = 0.2,
    ignore_index: int = 255,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    max_pixel_value: float = 255.0,
    rotate: float = 0.0,
) -> A.Compose:
    """Random scale, rotation, crop, flip, colour jitter, normalise; every new mask pixel is ``ignore_index``.

    Args:
        crop_size: output ``S`` or ``(H, W)``.
        scale: range of the random rescale factor.
        hflip: probability of a horizontal flip.
        color_jitter: strength of brightness/contrast/saturation jitter (0 disables it; it needs
            3-channel uint8 RGB images).
        ignore_index: mask value of every pixel a step creates (the padding of a crop larger than the
            scaled image, the corners of a rotation), so they never count as a class. Datasets built
            from a mapping (``build_transforms``) set it to their own ``ignore_index``.
        mean, std: normalisation statistics, one per channel, in units of ``max_pixel_value``
            (default: ImageNet RGB in [0, 1]); ``Normalization.albumentations_kwargs`` converts raw ones.
        max_pixel_value: the pixel value that is 1.0 (255 for uint8, 65535 for uint16, 1 for float).
        rotate: largest rotation in degrees (uniform in ``[-rotate, rotate]``, about the centre, size
            kept); 0 leaves it out.

    Returns:
        An ``A.Compose`` called as ``t(image=HxWxC, mask=HxW)`` returning float32 HxWxC and the mask.
    """
    h, w = (crop_size, crop_size) if isinstance(crop_size, int) else crop_size
    A = _albumentations()
    fill = {"border_mode": _BORDER_CONSTANT, "fill": 0, "fill_mask": ignore_index}
    steps: list = [A.RandomScale(scale_limit=(scale[0] - 1.0, scale[1] - 1.0), p=1.0)]
    if rotate:
        steps.append(A.Affine(rotate=(-abs(rotate), abs(rotate)), p=1.0, **fill))
    steps += [
        A.PadIfNeeded(min_height=h, min_width=w, **fill),
        A.RandomCrop(height=h, width=w),
        A.HorizontalFlip(p=hflip),
    ]
    if color_jitter > 0:
        steps.append(A.ColorJitter(color_jitter, color_jitter, color_jitter, 0.0, p=0.8))
    steps.append(A.Normalize(mean=mean, std=std, max_pixel_value=max_pixel_value))
    return A.Compose(steps)


def eval_transforms(
    mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD, max_pixel_value: float = 255.0
) -> A.Compose:
    """Normalisation only (evaluation runs at full resolution).

    Args:
        mean, std, max_pixel_value: as for ``train_transforms``.

    Returns:
        An ``A.Compose`` mapping ``image=HxWxC`` to float32 normalised, masks unchanged.
    """
    A = _albumentations()
    return A.Compose([A.Normalize(mean=mean, std=std, max_pixel_value=max_pixel_value)])


def instance_train_transforms(
    crop_size: int | tuple[int, int],
    scale: tuple[float, float] = (0.5, 2.0),
    hflip: float = 0.5,
    color_jitter: float = 0.2,
    ignore_index: int = 255,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    max_pixel_value: float = 255.0,
    rotate: float = 0.0,
) -> A.Compose:
    """The ``train_transforms`` steps for instance datasets (``coco``, ``cityscapes`` with ``task="instance"``).

    The segkit instance datasets pass the per-instance 0/1 masks through the same geometric steps as
    the image, then recompute each box as the tight box of its transformed mask and drop instances
    with no pixel left in the crop, so boxes, labels, masks, ``area`` and ``iscrowd`` stay
    consistent. Padding fills masks with ``ignore_index``, which is not 1, so it never becomes part
    of an instance. Only geometric steps that move masks with the image belong here.

    Args:
        crop_size, scale, hflip, color_jitter, ignore_index, mean, std, max_pixel_value, rotate: as for
            ``train_transforms``.

    Returns:
        An ``A.Compose`` called as ``t(image=..., mask=..., masks=[...])``.
    """
    return train_transforms(crop_size, scale, hflip, color_jitter, ignore_index, mean, std, max_pixel_value, rotate)


def instance_eval_transforms(
    mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD, max_pixel_value: float = 255.0
) -> A.Compose:
    """Normalisation only, for instance datasets (masks and boxes unchanged)."""
    return eval_transforms(mean, std, max_pixel_value)


PRESETS: dict[str, Callable[..., A.Compose]] = {"train": train_transforms, "eval": eval_transforms}
"""The presets a transforms mapping names with ``preset:`` (default "train")."""


def build_transforms(
    spec: Callable[..., Any] | Mapping[str, Any] | None,
    normalization: Normalization | None = None,
    image_dtype: str = "uint8",
    name: str = "transforms",
    quiet: bool = False,
    ignore_index: int = 255,
) -> Callable[..., Any] | None:
    """Turn a YAML-friendly transform spec into a callable (so configs can set augmentation).

    Args:
        spec: None (normalise only), a callable (returned unchanged), or a mapping of
            ``train_transforms`` keyword arguments, e.g. ``{crop_size: [256, 256], scale: [0.75, 1.25]}``
            (``preset: eval`` selects ``eval_transforms`` instead).
        normalization: the dataset's statistics (raw pixel units): the preset normalises with them
            (``mean``/``std`` then belong to the dataset, not to the mapping). Unless the images are
            3-channel uint8, colour jitter is left out of the train preset, said in one line.
        image_dtype: the pixel type of the dataset's images (sets ``max_pixel_value``).
        name: who is building (named in messages).
        quiet: do not print the colour-jitter note.
        ignore_index: the dataset's ``ignore_index``: the train preset fills every new mask pixel
            (padding, rotation corners) with it. A callable is checked with ``mask_fill_problems``:
            each step that fills masks with another value gets a ``MaskFillWarning`` naming it.

    Returns:
        The callable, or None.

    Raises:
        ValueError: an unknown preset or keyword, naming the accepted ones; an ``ignore_index`` in the
            mapping that is not the dataset's.
    """
    if spec is None:
        return spec
    if callable(spec):
        for problem in mask_fill_problems(spec, ignore_index):
            warnings.warn(f"{name}: {problem}", MaskFillWarning, stacklevel=2)
        return spec
    if not isinstance(spec, Mapping):
        raise ValueError(f"transforms: expected None, a callable or a mapping of options, got {spec!r}")
    kwargs = dict(spec)
    preset = kwargs.pop("preset", "train")
    if preset not in PRESETS:
        raise ValueError(f"transforms.preset: expected one of {sorted(PRESETS)}, got {preset!r}")
    builder = PRESETS[preset]
    accepted = set(inspect.signature(builder).parameters)
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        raise ValueError(f"transforms: unknown option(s) {unknown} for preset {preset!r}; accepted: {sorted(accepted)}")
    for key in ("crop_size", "scale", "mean", "std"):
        if isinstance(kwargs.get(key), list):
            kwargs[key] = tuple(kwargs[key])
    if "ignore_index" in accepted:
        if kwargs.get("ignore_index", ignore_index) != ignore_index:
            raise ValueError(
                f"{name}: transforms option ignore_index={kwargs['ignore_index']} differs from the dataset's "
                f"ignore_index={ignore_index}; the padding takes the dataset's: drop it from transforms (or give "
                "the dataset that ignore_index)"
            )
        kwargs["ignore_index"] = ignore_index
    if normalization is not None:
        own = normalization.albumentations_kwargs(image_dtype)
        given = sorted(set(own) & set(kwargs))
        if any(np.asarray(kwargs[k], np.float64).tolist() != np.asarray(own[k], np.float64).tolist() for k in given):
            raise ValueError(
                f"{name}: transforms option(s) {given} conflict with the dataset's normalisation; give the "
                f"statistics to the dataset (mean=, std= in raw pixel units) and drop them from transforms"
            )
        kwargs.update(normalization.albumentations_kwargs(image_dtype))
        rgb8 = normalization.channels == 3 and np.dtype(image_dtype) == np.uint8
        if preset == "train" and not rgb8 and kwargs.get("color_jitter", 0.2) > 0:
            kwargs["color_jitter"] = 0.0
            if not quiet:
                _log.info(
                    f"{name}: color_jitter skipped (ColorJitter needs 3-channel uint8 RGB; these images are "
                    f"{normalization.channels}-channel {np.dtype(image_dtype).name})"
                )
    return builder(**kwargs)


# Steps whose mask fill labels content they erase on purpose (an object removed is background), not new pixels.
_ERASERS = ("BaseDropout", "MaskDropout", "PixelDropout")


def mask_fill_problems(transforms: Any, ignore_index: int) -> list[str]:
    """The steps of an albumentations pipeline that fill new mask pixels with another value than ``ignore_index``.

    A pad, crop-with-padding, rotation, affine or distortion step with a constant border writes its
    ``fill_mask`` into the pixels it creates. albumentations' default is 0, so those pixels train as
    class 0 (background), and a value that is no class stops a CPU run and trips a device assert on
    CUDA. Reflected or replicated borders copy labels with the image and are not reported; nor are
    dropout steps, whose ``fill_mask`` labels what they erase. Compose, OneOf, SomeOf and the like are
    looked through; a callable that is not an albumentations object cannot be inspected (empty list).

    Args:
        transforms: an ``A.Compose`` (or any albumentations transform), or another callable.
        ignore_index: the dataset's ``ignore_index``.

    Returns:
        One sentence per offending step, naming it, its fill, and the fix.

    Example:
        >>> import albumentations as A
        >>> mask_fill_problems(A.Compose([A.PadIfNeeded(64, 64)]), 255)  # doctest: +ELLIPSIS
        ['PadIfNeeded fills new mask pixels with 0 ...']
    """
    found: list[str] = []
    # No albumentations object can exist before albumentations is imported: nothing to inspect then.
    A = sys.modules.get("albumentations")
    if A is not None:
        _walk(A, transforms, ignore_index, found)
    return found


def _walk(A: ModuleType, step: Any, ignore_index: int, found: list[str]) -> None:
    if isinstance(step, A.BaseCompose):
        for child in step.transforms:
            _walk(A, child, ignore_index, found)
        return
    fill = getattr(step, "fill_mask", None)
    if fill is None or not isinstance(step, A.BasicTransform):
        return
    if any(base.__name__ in _ERASERS for base in type(step).__mro__):
        return
    if getattr(step, "border_mode", _BORDER_CONSTANT) != _BORDER_CONSTANT:
        return
    if getattr(step, "pad_if_needed", True) is False:  # a crop that never pads
        return
    values = np.unique(np.asarray(fill, np.float64)).tolist()
    if values == [float(ignore_index)]:
        return
    shown = ", ".join(f"{v:g}" for v in values)
    found.append(
        f"{type(step).__name__} fills new mask pixels (padding, borders) with {shown}, not the dataset's "
        f"ignore_index {ignore_index}: they would train as label {shown}, or stop training if that is no class. Remedy: "
        f"{type(step).__name__}(..., fill_mask={ignore_index}), or the preset transforms={{'crop_size': ...}}, "
        "which fills with ignore_index"
    )
