"""dataset_info reads the metadata through Subset, random_split, ConcatDataset and nested wrappers."""

import numpy as np
import pytest
import torch
from torch.utils.data import ConcatDataset, Subset, random_split

from segkit.datasets import build_dataset, dataset_info


@pytest.fixture
def folder(tmp_path, layouts):
    layouts.write_folder(tmp_path / "f", n=4, num_classes=3)
    return build_dataset("folder", root=tmp_path / "f", num_classes=3, class_names=["a", "b", "c"], ignore_index=250)


def test_plain_dataset(folder):
    info = dataset_info(folder)
    assert (info.num_classes, info.class_names, info.ignore_index, info.task) == (3, ("a", "b", "c"), 250, "semantic")
    assert np.array_equal(info.palette, folder.palette)


def test_subset_random_split_and_nesting(folder):
    train, val = random_split(folder, [3, 1], generator=torch.Generator().manual_seed(0))
    nested = Subset(Subset(train, [0, 1]), [1])
    for ds in (train, val, nested):
        info = dataset_info(ds)
        assert (info.num_classes, info.class_names, info.ignore_index) == (3, ("a", "b", "c"), 250)
        assert np.array_equal(info.palette, folder.palette)


def test_concat_of_agreeing_datasets(folder):
    info = dataset_info(ConcatDataset([folder, Subset(folder, [0])]))
    assert (info.num_classes, info.ignore_index, info.class_names) == (3, 250, ("a", "b", "c"))


def test_concat_of_disagreeing_datasets_names_the_field(folder, tmp_path):
    other = build_dataset("folder", root=tmp_path / "f", num_classes=3, class_names=["a", "b", "c"])
    with pytest.raises(ValueError, match=r"disagree on ignore_index: 250 \(dataset 0\) vs 255 \(dataset 1\)"):
        dataset_info(ConcatDataset([folder, other]))
    renamed = build_dataset("folder", root=tmp_path / "f", num_classes=3, class_names=["x", "b", "c"], ignore_index=250)
    with pytest.raises(ValueError, match="disagree on class_names"):
        dataset_info(ConcatDataset([folder, renamed]))


def test_a_dataset_without_metadata_gives_the_defaults():
    info = dataset_info(torch.utils.data.TensorDataset(torch.zeros(2)))
    assert (info.num_classes, info.class_names, info.palette, info.ignore_index, info.task) == (
        None,
        None,
        None,
        255,
        None,
    )
