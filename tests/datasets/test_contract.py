"""Every registered dataset exposes the metadata of the contract and yields the documented sample dict."""

import numpy as np
import pytest
import torch

from segkit.datasets import DATASETS, build_dataset


def _build(name, root, layouts):
    if name.startswith("voc"):
        layouts.write_voc(root)
        if name == "voc_aug":
            (root / "VOCdevkit" / "VOC2012" / "ImageSets" / "Segmentation" / "train_aug.txt").write_text(
                "2007_000032\n"
            )
        return build_dataset(name, root=root)
    if name == "cityscapes":
        layouts.write_cityscapes(root)
        return build_dataset(name, root=root)
    if name == "camvid":
        layouts.write_camvid_segnet(root)
        return build_dataset(name, root=root)
    if name.startswith("coco"):
        layouts.write_coco(root)
        return build_dataset(name, root=root, split="val")
    if name == "folder":
        layouts.write_folder(root)
        return build_dataset(name, root=root)
    if name == "shapes":
        return build_dataset(name, num_images=2, image_size=24)
    raise AssertionError(f"no fixture for the registered dataset {name!r}: add one here")


@pytest.mark.parametrize("name", DATASETS.names())
def test_contract(tmp_path, layouts, name):
    ds = _build(name, tmp_path, layouts)
    assert ds.task in ("semantic", "instance")
    assert len(ds.class_names) == ds.num_classes and isinstance(ds.ignore_index, int)
    assert ds.palette.shape == (ds.num_classes, 3) and ds.palette.dtype == np.uint8
    s = ds[0]
    assert s["image"].dtype == torch.float32 and s["image"].ndim == 3 and s["image"].shape[0] == 3
    assert isinstance(s["path"], str)
    if ds.task == "semantic":
        m = s["mask"]
        assert m.dtype == torch.int64 and m.shape == s["image"].shape[1:]
        assert bool(((m >= 0) & (m < ds.num_classes) | (m == ds.ignore_index)).all())
    else:
        t = s["target"]
        k = len(t["labels"])
        assert t["boxes"].shape == (k, 4) and t["boxes"].dtype == torch.float32
        assert t["masks"].shape == (k, *s["image"].shape[1:]) and t["masks"].dtype == torch.uint8
        assert t["labels"].dtype == torch.int64 and bool(((t["labels"] >= 1) & (t["labels"] < ds.num_classes)).all())
        assert t["area"].shape == (k,) and t["iscrowd"].shape == (k,)
