"""Writers of folders and VOC trees whose photos differ in size (JPEG images, PNG index masks)."""

from pathlib import Path

import numpy as np

from tests.datasets.conftest import save, save_palette_png

SIZES = ((40, 56), (72, 64), (64, 100), (33, 47), (72, 64))  # (h, w); one size twice: a group of two


def photo(rng, h, w):
    """A smooth image with some noise (compresses like a photo, unlike pure noise)."""
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 / w, yy * 255 / h, (xx + yy) * 127 / (h + w)], -1)
    return np.clip(base + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8)


def write_varied_folder(root: Path, sizes=SIZES, num_classes=3, ignore_value=None, seed=0) -> list[np.ndarray]:
    """images/img_i.jpg + masks/img_i.png of the given sizes; a border of ``ignore_value`` when given.

    Returns:
        The masks written, in file order.
    """
    rng = np.random.default_rng(seed)
    masks = []
    for i, (h, w) in enumerate(sizes):
        save(Path(root) / "images" / f"img_{i}.jpg", photo(rng, h, w), quality=90)
        mask = rng.integers(0, num_classes, size=(h, w), dtype=np.uint8)
        mask[: h // 2, : w // 2] = i % num_classes  # a blob, so a model has something to learn
        if ignore_value is not None:
            mask[0, :] = ignore_value
            mask[:, -1] = ignore_value
        save(Path(root) / "masks" / f"img_{i}.png", mask)
        masks.append(mask)
    return masks


def write_varied_voc(root: Path, train_sizes=SIZES, val_sizes=SIZES[:4], seed=0) -> Path:
    """VOCdevkit/VOC2012 with JPEGImages of varied sizes, palette SegmentationClass PNGs (255 borders),
    ImageSets/Segmentation/{train_aug,val}.txt (voc_aug finds train_aug.txt there)."""
    from segkit.datasets.voc import voc_palette

    rng = np.random.default_rng(seed)
    voc = Path(root) / "VOCdevkit" / "VOC2012"
    ids = {"train_aug": [], "val": []}
    for split, sizes in (("train_aug", train_sizes), ("val", val_sizes)):
        for h, w in sizes:
            image_id = f"2007_{len(ids['train_aug']) + len(ids['val']):06d}"
            save(voc / "JPEGImages" / f"{image_id}.jpg", photo(rng, h, w), quality=90)
            mask = rng.integers(0, 21, size=(h, w), dtype=np.uint8)
            mask[0, :] = 255
            save_palette_png(voc / "SegmentationClass" / f"{image_id}.png", mask, voc_palette(256))
            ids[split].append(image_id)
    seg = voc / "ImageSets" / "Segmentation"
    seg.mkdir(parents=True, exist_ok=True)
    for split, names in ids.items():
        (seg / f"{split}.txt").write_text("\n".join(names) + "\n")
    return voc


def write_varied_coco(root: Path, sizes=SIZES[:3], seed=0) -> None:
    """COCO 2017 layout (train2017/, val2017/, annotations/instances_*.json) with photos of different sizes,
    two polygon instances per image (a person and a dog)."""
    import json

    rng = np.random.default_rng(seed)
    cats = [
        {"id": 1, "name": "person", "supercategory": "person"},
        {"id": 18, "name": "dog", "supercategory": "animal"},
    ]
    for split in ("train", "val"):
        images, anns = [], []
        for k, (h, w) in enumerate(sizes, start=1):
            name = f"{k:012d}.jpg"
            save(Path(root) / f"{split}2017" / name, photo(rng, h, w), quality=90)
            images.append({"id": k, "file_name": name, "height": h, "width": w})
            for j, (cat, (x0, y0, x1, y1)) in enumerate(
                [(1, (2, 2, w // 2, h // 2)), (18, (w // 2, h // 3, w - 3, h - 3))]
            ):
                poly = [x0, y0, x1, y0, x1, y1, x0, y1]
                area = (x1 - x0) * (y1 - y0)
                anns.append({"id": 10 * k + j, "image_id": k, "category_id": cat, "segmentation": [poly],
                             "bbox": [x0, y0, x1 - x0, y1 - y0], "area": area, "iscrowd": 0})  # fmt: skip
        (Path(root) / "annotations").mkdir(parents=True, exist_ok=True)
        data = {"images": images, "annotations": anns, "categories": cats}
        (Path(root) / "annotations" / f"instances_{split}2017.json").write_text(json.dumps(data))
