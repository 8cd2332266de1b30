"""folder: the folder names published sets use (image/ + label/, JPEGImages/ + SegmentationClass/, ...), image_dir=."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
from PIL import Image

from segkit.datasets import build_dataset


def _em_set(root, n=5, size=48, image="image", label="label"):
    """An EM-like set: greyscale PNG sections, 0/255 membrane masks of the same stem (the U-Net repository's layout)."""
    rng = np.random.default_rng(0)
    masks = {}
    for i in range(n):
        section = rng.integers(0, 256, (size, size), dtype=np.uint8)
        mask = np.where(rng.random((size, size)) < 0.3, 255, 0).astype(np.uint8)
        for folder, array in ((image, section), (label, mask)):
            (root / folder).mkdir(parents=True, exist_ok=True)
            Image.fromarray(array, "L").save(root / folder / f"{i}.png")
        masks[f"{i}.png"] = mask
    return masks


def test_image_and_label_folders_of_greyscale_sections_with_0_255_masks(tmp_path):
    masks = _em_set(tmp_path)
    ds = build_dataset("folder", root=tmp_path, verbose=False)
    assert [(p.parent.name, m.parent.name) for p, m in ds.items] == [("image", "label")] * 5
    assert ds.encoding.kind == "binary" and ds.num_classes == 2
    image, mask, _ = ds.load_raw(3)
    assert image.shape == (48, 48, 3)
    np.testing.assert_array_equal(mask, masks["3.png"] // 255)  # 255 is class 1


def test_split_subfolders_each_with_image_and_label(tmp_path):
    _em_set(tmp_path / "train", n=4)
    _em_set(tmp_path / "val", n=2)
    train = build_dataset("folder", root=tmp_path, split="train", verbose=False)
    val = build_dataset("folder", root=tmp_path, split="val", verbose=False)
    assert len(train) == 4 and len(val) == 2
    assert train.items[0][1] == tmp_path / "train" / "label" / "0.png"
    with pytest.raises(FileNotFoundError) as e:
        build_dataset("folder", root=tmp_path)
    assert "['train', 'val']" in str(e.value) and "--split train" in str(e.value)


def test_voc_like_jpegimages_and_segmentation_class_with_its_split_list(tmp_path):
    from segkit.datasets.voc import voc_palette

    rng = np.random.default_rng(1)
    ids = ["2007_000032", "2007_000039", "2007_000063", "2007_000068"]
    stored = {}
    for i in ids:
        (tmp_path / "JPEGImages").mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(tmp_path / "JPEGImages" / f"{i}.jpg")
        for folder, top in (("SegmentationClass", 4), ("SegmentationObject", 9)):  # object ids: not the classes
            (tmp_path / folder).mkdir(exist_ok=True)
            mask = rng.integers(0, top, (30, 40)).astype(np.uint8)
            mask[0] = 255
            im = Image.fromarray(mask, "P")
            im.putpalette(voc_palette(256).reshape(-1).tolist())
            im.save(tmp_path / folder / f"{i}.png")
            stored[(folder, i)] = mask
    lists = tmp_path / "ImageSets" / "Segmentation"
    lists.mkdir(parents=True)
    (lists / "train.txt").write_text("\n".join(ids[:3]) + "\n")
    ds = build_dataset("folder", root=tmp_path, split="train", verbose=False)
    assert [p.name for p, _ in ds.items] == [f"{i}.jpg" for i in ids[:3]]
    assert {m.parent.name for _, m in ds.items} == {"SegmentationClass"}
    assert ds.encoding.kind == "palette" and ds.num_classes == 4
    np.testing.assert_array_equal(ds.load_raw(1)[1], stored[("SegmentationClass", ids[1])])


def test_stems_and_folder_names_in_another_case(tmp_path):
    rng = np.random.default_rng(2)
    for i, stem in enumerate(["IMG_0001", "IMG_0002", "Img_0003"]):
        (tmp_path / "Images").mkdir(exist_ok=True)
        (tmp_path / "GT").mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(tmp_path / "Images" / f"{stem}.JPG")
        mask = np.full((20, 24), i % 2, np.uint8)
        mask[:, :4] = 1 - i % 2
        Image.fromarray(mask).save(tmp_path / "GT" / f"{stem.lower()}_Mask.png")
    ds = build_dataset("folder", root=tmp_path, verbose=False)
    assert [(p.name, m.name) for p, m in ds.items] == [
        ("IMG_0001.JPG", "img_0001_Mask.png"),
        ("IMG_0002.JPG", "img_0002_Mask.png"),
        ("Img_0003.JPG", "img_0003_Mask.png"),
    ]
    assert ds.layout.mask_suffix == "_mask" and not ds.layout.missing


def _own_names(root):
    rng = np.random.default_rng(3)
    for i in range(4):
        for folder in ("pics", "segs"):
            (root / folder).mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (16, 20, 3), dtype=np.uint8)).save(root / "pics" / f"leaf{i}.jpg")
        Image.fromarray((rng.random((16, 20)) < 0.5).astype(np.uint8)).save(root / "segs" / f"leaf{i}.png")
    (root / "notes").mkdir()


def test_unknown_folder_names_are_listed_with_the_options_that_pair_them(tmp_path):
    _own_names(tmp_path)
    with pytest.raises(FileNotFoundError) as e:
        build_dataset("folder", root=tmp_path)
    text = str(e.value)
    assert "pics/ (4 images)" in text and "segs/ (4 images)" in text and "notes/ (0 images)" in text
    assert "image_dir='pics', mask_dir='segs'" in text
    assert "--set data.image_dir=pics --set data.mask_dir=segs" in text
    ds = build_dataset("folder", root=tmp_path, image_dir="pics", mask_dir="segs", verbose=False)
    assert [(p.name, m.name) for p, m in ds.items] == [(f"leaf{i}.jpg", f"leaf{i}.png") for i in range(4)]
    with pytest.raises(FileNotFoundError, match=r"image_dir='photos'.*\['notes', 'pics', 'segs'\]"):
        build_dataset("folder", root=tmp_path, image_dir="photos", mask_dir="segs")


def test_image_dir_and_mask_dir_from_the_command_line(tmp_path, capsys):
    from segkit.cli import _folder_config, build_parser, main

    _own_names(tmp_path / "data")
    root = tmp_path / "data"
    sets = ["--set", "data.image_dir=pics", "--set", "data.mask_dir=segs"]
    assert main(["inspect", "--dataset", "folder", "--root", str(root), "--no-picture", *sets]) == 0
    assert "4 images" in capsys.readouterr().out
    # segkit train --data: the seeded split lists, then both datasets built from the config as train builds them.
    args = build_parser().parse_args(["train", "--data", str(root), "--out", str(tmp_path / "run"), *sets])
    assert isinstance(args, argparse.Namespace)
    from segkit.config import apply_overrides, config_from_dict

    cfg = config_from_dict(apply_overrides(_folder_config(args), args.set))
    train = build_dataset("folder", **cfg.data.split_params("train"))
    val = build_dataset("folder", **cfg.data.split_params("val"))
    assert len(train) + len(val) == 4 and train.layout.images_dir == root / "pics"


def test_a_given_image_dir_outside_the_split_folders_never_serves_every_split(tmp_path):
    """SegNet's CamVid layout: train/ + trainannot/ + val/ + valannot/; image_dir='train' is not a split's folder."""
    from segkit.cli import _folder_config, build_parser
    from segkit.config import apply_overrides, config_from_dict

    rng = np.random.default_rng(4)
    for split, n in (("train", 4), ("val", 2)):
        for folder in (split, f"{split}annot"):
            (tmp_path / folder).mkdir()
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(tmp_path / split / f"{split}{i}.png")
            Image.fromarray(np.eye(8, dtype=np.uint8)).save(tmp_path / f"{split}annot" / f"{split}{i}.png")
    with pytest.raises(FileNotFoundError, match="every split would read the same files"):
        build_dataset("folder", root=tmp_path, split="val", image_dir="train", mask_dir="trainannot")
    sets = ["--set", "data.image_dir=train", "--set", "data.mask_dir=trainannot"]
    args = build_parser().parse_args(["train", "--data", str(tmp_path), "--out", str(tmp_path / "run"), *sets])
    cfg = config_from_dict(apply_overrides(_folder_config(args), args.set))
    train = build_dataset("folder", **cfg.data.split_params("train"), verbose=False)
    val = build_dataset("folder", **cfg.data.split_params("val"), verbose=False)
    names = [p.name for p, _ in train.items] + [p.name for p, _ in val.items]
    assert sorted(names) == [f"train{i}.png" for i in range(4)]  # a seeded split of train/, each image once
