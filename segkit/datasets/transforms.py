"""albumentations presets for training and evaluation (semantic and instance tasks)."""

from __future__ import annotations

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import inspect  # noqa: E402
from collections.abc import Callable, Mapping, Sequence  # noqa: E402
from typing import TYPE_CHECKING, Any  # noqa: E402

import albumentations as A  # noqa: E402
import numpy as np  # noqa: E402

from segkit.datasets.base import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402

if TYPE_CHECKING:
    from segkit.datasets.normalization import Normalization

__all__ = [
    "build_transforms",
    "eval_transforms",
    "instance_eval_transforms",
    "instance_train_transforms",
    "train_transforms",
]


def train_transforms(
    crop_size: int | tuple[int, int],
    scale: tuple[float, float] = (0.5, 2.0),
    hflip: float = 0.5,
    color_jitter: float = 0.2,
    ignore_index: int = 255,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    max_pixel_value: float = 255.0,
) -> A.Compose:
    """Random scale, crop (padding masks with ``ignore_index``), flip, colour jitter, normalise.

    Args:
        crop_size: output ``S`` or ``(H, W)``.
        scale: range of the random rescale factor.
        hflip: probability of a horizontal flip.
        color_jitter: strength of brightness/contrast/saturation jitter (0 disables it; it needs
            3-channel uint8 RGB images).
        ignore_index: mask value of padded pixels, so padding never counts as a class.
        mean, std: normalisation statistics, one per channel, in units of ``max_pixel_value``
            (default: ImageNet RGB in [0, 1]); ``Normalization.albumentations_kwargs`` converts raw ones.
        max_pixel_value: the pixel value that is 1.0 (255 for uint8, 65535 for uint16, 1 for float).

    Returns:
        An ``A.Compose`` called as ``t(image=HxWxC, mask=HxW)`` returning float32 HxWxC and the mask.
    """
    h, w = (crop_size, crop_size) if isinstance(crop_size, int) else crop_size
    steps: list = [
        A.RandomScale(scale_limit=(scale[0] - 1.0, scale[1] - 1.0), p=1.0),
        A.PadIfNeeded(min_height=h, min_width=w, border_mode=0, fill=0, fill_mask=ignore_index),
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
) -> A.Compose:
    """The ``train_transforms`` steps for instance datasets (``coco``, ``cityscapes`` with ``task="instance"``).

    The segkit instance datasets pass the per-instance 0/1 masks through the same geometric steps as
    the image, then recompute each box as the tight box of its transformed mask and drop instances
    with no pixel left in the crop, so boxes, labels, masks, ``area`` and ``iscrowd`` stay
    consistent. Padding fills masks with ``ignore_index``, which is not 1, so it never becomes part
    of an instance. Only geometric steps that move masks with the image belong here.

    Args:
        crop_size, scale, hflip, color_jitter, ignore_index, mean, std, max_pixel_value: as for
            ``train_transforms``.

    Returns:
        An ``A.Compose`` called as ``t(image=..., mask=..., masks=[...])``.
    """
    return train_transforms(crop_size, scale, hflip, color_jitter, ignore_index, mean, std, max_pixel_value)


def instance_eval_transforms(
    mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD, max_pixel_value: float = 255.0
) -> A.Compose:
    """Normalisation only, for instance datasets (masks and boxes unchanged)."""
    return eval_transforms(mean, std, max_pixel_value)


def build_transforms(
    spec: Callable[..., Any] | Mapping[str, Any] | None,
    normalization: Normalization | None = None,
    image_dtype: str = "uint8",
    name: str = "transforms",
    quiet: bool = False,
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

    Returns:
        The callable, or None.

    Raises:
        ValueError: an unknown preset or keyword, naming the accepted ones.
    """
    if spec is None or callable(spec):
        return spec
    if not isinstance(spec, Mapping):
        raise ValueError(f"transforms: expected None, a callable or a mapping of options, got {spec!r}")
    kwargs = dict(spec)
    preset = kwargs.pop("preset", "train")
    builders: dict[str, Callable[..., A.Compose]] = {"train": train_transforms, "eval": eval_transforms}
    if preset not in builders:
        raise ValueError(f"transforms.preset: expected 'train' or 'eval', got {preset!r}")
    builder = builders[preset]
    accepted = set(inspect.signature(builder).parameters)
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        raise ValueError(f"transforms: unknown option(s) {unknown} for preset {preset!r}; accepted: {sorted(accepted)}")
    for key in ("crop_size", "scale", "mean", "std"):
        if isinstance(kwargs.get(key), list):
            kwargs[key] = tuple(kwargs[key])
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
                print(
                    f"{name}: color_jitter skipped (ColorJitter needs 3-channel uint8 RGB; these images are "
                    f"{normalization.channels}-channel {np.dtype(image_dtype).name})"
                )
    return builder(**kwargs)
