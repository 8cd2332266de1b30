"""Datasets by name: ``build_dataset("shapes", split="train")``; each yields dicts (see ``base.SegmentationDataset``)."""

from __future__ import annotations

from typing import Any

from torch.utils.data import Dataset

# Each family module registers its datasets on import; import every one explicitly.
from segkit.datasets import camvid, cityscapes, coco, folder, shapes, voc  # noqa: F401
from segkit.datasets.bad_samples import BadSampleError, BadSampleLog
from segkit.datasets.base import (
    SegmentationDataset,
    collate_instances,
    collate_semantic,
    padded_groups,
    predict_unpadded,
    training_targets,
)
from segkit.datasets.coco import CocoFormatError
from segkit.datasets.mask_encoding import MaskEncoding, MaskEncodingError, detect_mask_encoding
from segkit.datasets.registry import DATASETS
from segkit.datasets.wrappers import DatasetInfo, dataset_info

__all__ = [
    "BadSampleError",
    "BadSampleLog",
    "CocoFormatError",
    "DATASETS",
    "DatasetInfo",
    "MaskEncoding",
    "MaskEncodingError",
    "SegmentationDataset",
    "build_dataset",
    "collate_instances",
    "collate_semantic",
    "dataset_info",
    "detect_mask_encoding",
    "padded_groups",
    "predict_unpadded",
    "training_targets",
]


def build_dataset(name: str | Dataset, **kwargs: Any) -> Dataset:
    """Build a registered dataset by name, or return a ``Dataset`` object unchanged.

    Args:
        name: a registered name (see ``segkit list datasets``) or a dataset object.
        **kwargs: the dataset's keyword arguments (``root``, ``split``, ``transforms``, ...).

    Returns:
        A map-style dataset whose items are dicts with ``image`` (float ``3×H×W``), ``mask``
        (int64 ``H×W``) and/or ``target`` (torchvision detection dict), and ``path``.
    """
    if not isinstance(name, str):
        if kwargs:
            raise TypeError("build_dataset: keyword arguments are only accepted with a dataset name")
        return name
    return DATASETS.build(name, **kwargs)
