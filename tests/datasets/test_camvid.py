"""camvid in both distributed layouts, against hand-computed label maps."""

import numpy as np
import torch
from PIL import Image

from segkit.datasets import build_dataset


def test_segnet_layout_void_to_ignore_and_split_list_matched_by_name(tmp_path, layouts):
    names = layouts.write_camvid_segnet(tmp_path)
    ds = build_dataset("camvid", root=tmp_path, split="train")
    assert ds.layout == "segnet" and ds.num_classes == 11 and len(ds.class_names) == 11
    # train.txt lists absolute paths from another machine, in reverse order: matched by file name.
    assert [p.name for p, _ in ds.items] == list(reversed(names))
    for i, name in enumerate(reversed(names)):
        stored = np.asarray(Image.open(tmp_path / "trainannot" / name)).astype(np.int64)
        expected = np.where(stored == 11, 255, stored)
        assert torch.equal(ds[i]["mask"], torch.from_numpy(expected))
        assert np.array_equal(ds.load_raw(i)[0], np.asarray(Image.open(tmp_path / "train" / name).convert("RGB")))


def test_segnet_layout_without_list_uses_sorted_folder(tmp_path, layouts):
    names = layouts.write_camvid_segnet(tmp_path, split="val")
    (tmp_path / "val.txt").unlink()
    ds = build_dataset("camvid", root=tmp_path, split="val")
    assert [p.name for p, _ in ds.items] == sorted(names)


def test_colour_layout_maps_colours_void_and_unknown_to_ignore(tmp_path, layouts):
    stems, codes = layouts.write_camvid_colour(tmp_path)
    ds = build_dataset("camvid", root=tmp_path, split="all")
    assert ds.layout == "colour"
    # label_colors.txt: Animal, Archway, Bicyclist, Void, Building; Void -> ignore; code 5 = unknown colour.
    assert ds.class_names == ("Animal", "Archway", "Bicyclist", "Building") and ds.num_classes == 4
    hand = np.array([0, 1, 2, 255, 3, 255])
    for i in range(2):
        assert torch.equal(ds[i]["mask"], torch.from_numpy(hand[codes[i]]))
    assert ds.palette.tolist() == [[64, 128, 64], [192, 0, 128], [0, 128, 192], [128, 0, 0]]
    train = build_dataset("camvid", root=tmp_path, split="train")
    assert len(train) == 1 and torch.equal(train[0]["mask"], torch.from_numpy(hand[codes[1]]))
    keep_void = build_dataset("camvid", root=tmp_path, split="all", void_as_ignore=False)
    assert keep_void.num_classes == 5
    assert torch.equal(keep_void[0]["mask"], torch.from_numpy(np.array([0, 1, 2, 3, 4, 255])[codes[0]]))
