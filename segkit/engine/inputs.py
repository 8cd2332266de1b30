"""Coercion of the Trainer's inputs: device names, datasets given by name, batches moved to a device."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch.utils.data import Dataset

from segkit.datasets.base import to_device  # re-exported: the Trainer's batches move with it

__all__ = ["as_dataset", "model_arguments", "resolve_device", "to_device"]


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; other strings as ``torch.device``."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def as_dataset(data: Dataset | str | None, split: str) -> Dataset | None:
    """A dataset object, or one built by name for ``split``."""
    from segkit.datasets import build_dataset

    if data is None or isinstance(data, Dataset):
        return data
    if isinstance(data, str):
        return build_dataset(data, split=split)
    if isinstance(data, Iterable):
        return data
    raise TypeError(f"expected a Dataset or a dataset name, got {type(data).__name__}")


def model_arguments(params: Mapping[str, Any], num_classes: int | None, in_channels: int | None) -> dict[str, Any]:
    """A model's keyword arguments completed from the data: ``num_classes`` and, for images with other than 3
    channels (multi-band TIFFs), ``in_channels``; values given in ``params`` win. The one rule the Trainer and
    ``Trainer.from_config`` build a model by name with."""
    kwargs = dict(params)
    kwargs.setdefault("num_classes", num_classes)
    if (in_channels or 3) != 3:
        kwargs.setdefault("in_channels", in_channels)
    return kwargs
