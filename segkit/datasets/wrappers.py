"""Dataset metadata read through torch's wrappers (``Subset``, ``random_split``, ``ConcatDataset``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from torch.utils.data import ConcatDataset

__all__ = ["DatasetInfo", "dataset_info"]

_FIELDS = (
    "num_classes",
    "class_names",
    "palette",
    "ignore_index",
    "task",
    "in_channels",
    "normalization",
    "mask_format",
    "input_size",
)


@dataclass(frozen=True)
class DatasetInfo:
    """The metadata of a segkit dataset (see ``SegmentationDataset``); None where the dataset has none.

    Attributes:
        num_classes: number of classes.
        class_names: one name per class.
        palette: ``(num_classes, 3)`` uint8 RGB colours.
        ignore_index: the label of ignored pixels (255 when the dataset does not say).
        task: "semantic" or "instance".
        in_channels: image channels (file datasets; multi-band TIFFs have more than 3).
        normalization: the ``Normalization`` the samples are normalised with (file datasets).
        mask_format: how the label files were stored (``segkit.datasets.mask_format``; folder datasets),
            so predictions can be written the same way; None: index masks.
        input_size: ``(H, W)`` every image is resized to before the model sees it (a folder dataset's
            ``image_size``): ``Predictor`` resizes new images the same way; None: images at their own size.
    """

    num_classes: int | None = None
    class_names: tuple[str, ...] | None = None
    palette: np.ndarray | None = None
    ignore_index: int = 255
    task: str | None = None
    in_channels: int | None = None
    normalization: Any = None
    mask_format: dict[str, Any] | None = None
    input_size: tuple[int, int] | None = None


def dataset_info(dataset: Any) -> DatasetInfo:
    """Read a dataset's metadata, looking through ``Subset`` (and ``random_split``'s subsets), nested
    wrappers that keep the wrapped dataset as ``.dataset``, and ``ConcatDataset``.

    A wrapper's own attribute wins (e.g. ``WithDistanceMaps`` delegates to the dataset it wraps); a
    ``ConcatDataset``'s members must agree on every field one of them sets.

    Args:
        dataset: a dataset, wrapped or not.

    Returns:
        The ``DatasetInfo``.

    Raises:
        ValueError: members of a ``ConcatDataset`` disagree; the message names the field and the values.

    Example:
        >>> train, val = torch.utils.data.random_split(build_dataset("folder", root="data"), [0.8, 0.2])
        >>> dataset_info(train).num_classes  # doctest: +SKIP
        3
    """
    values = {name: _lookup(dataset, name) for name in _FIELDS}
    ignore = values.pop("ignore_index")
    names = values.pop("class_names")
    palette = values.pop("palette")
    return DatasetInfo(
        num_classes=None if values["num_classes"] is None else int(values["num_classes"]),
        class_names=None if names is None else tuple(str(n) for n in names),
        palette=None if palette is None else np.asarray(palette),
        ignore_index=255 if ignore is None else int(ignore),
        task=values["task"],
        in_channels=None if values["in_channels"] is None else int(values["in_channels"]),
        normalization=_normalization(dataset, values["normalization"]),
        mask_format=values["mask_format"],
        input_size=None if (size := values["input_size"]) is None else (int(size[0]), int(size[1])),
    )


def _normalization(dataset: Any, stored: Any) -> Any:
    """The dataset's ``normalization``, unless its transforms hold a ``Normalize`` step with other statistics (a
    user's own pipeline): the images are then normalised by that step, and its statistics are the true ones."""
    from segkit.datasets.normalization import Normalization, transforms_normalization

    applied = transforms_normalization(_lookup(dataset, "transforms"), _lookup(dataset, "image_dtype") or "uint8")
    if applied is None:
        return stored
    if stored is not None:
        own = Normalization.coerce(stored)
        if len(own.mean) == len(applied.mean) and np.allclose(
            own.mean + own.std, applied.mean + applied.std, rtol=1e-5
        ):
            return stored
    return applied


def _lookup(dataset: Any, name: str, depth: int = 0) -> Any:
    """The value of ``name`` on ``dataset`` or the first dataset under it that has one (None if none)."""
    if dataset is None or depth > 16:
        return None
    value = getattr(dataset, name, None)
    if value is not None:
        return value
    if isinstance(dataset, ConcatDataset):
        found = [(i, v) for i, v in ((i, _lookup(d, name, depth + 1)) for i, d in enumerate(dataset.datasets))]
        found = [(i, v) for i, v in found if v is not None]
        for i, v in found[1:]:
            if not _same(v, found[0][1]):
                raise ValueError(
                    f"ConcatDataset: its datasets disagree on {name}: {_show(found[0][1])} (dataset "
                    f"{found[0][0]}) vs {_show(v)} (dataset {i}); concatenate datasets with the same {name}"
                )
        return found[0][1] if found else None
    return _lookup(getattr(dataset, "dataset", None), name, depth + 1)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (np.ndarray, list, tuple)) or isinstance(b, (np.ndarray, list, tuple)):
        try:
            return bool(np.array_equal(np.asarray(a), np.asarray(b)))
        except (TypeError, ValueError):
            return False
    return bool(a == b)


def _show(value: Any) -> str:
    text = repr(np.asarray(value).tolist()) if isinstance(value, np.ndarray) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
