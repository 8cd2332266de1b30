"""``coco`` (instances) and ``coco_semantic`` (masks rasterised from instances), via pycocotools."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from segkit.datasets.bad_samples import BadSampleError
from segkit.datasets.base import default_palette
from segkit.datasets.decoding import read_image
from segkit.datasets.file_dataset import FileDataset
from segkit.datasets.registry import DATASETS

__all__ = [
    "COCODataset",
    "COCOSemanticDataset",
    "CocoFormatError",
    "VOC_COCO_CATEGORIES",
    "ann_to_mask",
    "load_coco_json",
]

# torchvision references/segmentation: COCO category ids of the 20 VOC classes, index = VOC label.
VOC_COCO_CATEGORIES = [0, 5, 2, 16, 9, 44, 6, 3, 17, 62, 21, 67, 18, 19, 4, 1, 64, 20, 63, 7, 72]


def _layout(root: Path, split: str, year: int | str) -> str:
    """The COCO layout expected under ``root`` for this split, and how to read another one."""
    return (
        f"expected {root / 'annotations' / f'instances_{split}{year}.json'} and images in {root / f'{split}{year}'}/ "
        "(another split: split=...; another layout: ann_file=... and image_dir=...)"
    )


class CocoFormatError(ValueError):
    """A COCO annotation file that cannot be used; the message names the file, the entry and the reason."""


def load_coco_json(path: str | Path) -> dict[str, Any]:
    """Load and validate a COCO instances JSON.

    Checked at load, so a bad file fails at construction and never inside pycocotools (whose C code
    crashes or hangs on huge or NaN polygon coordinates and on malformed compressed RLE): types of
    ids, sizes, boxes and ``iscrowd``; duplicate image, category and annotation ids; polygons
    (at least 3 points, finite, inside the image extended by its size on every side); RLE sizes and
    counts (non-negative, summing to ``height * width``, compressed strings decoded and checked).
    Boxes with zero or negative size are accepted here and skipped by ``coco`` (see its docstring).

    Raises:
        FileNotFoundError: no such file.
        CocoFormatError: (a ``ValueError``) anything malformed; the message names the file and field.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"coco: annotation file {path} does not exist")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise CocoFormatError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise CocoFormatError(f"{path}: top level must be an object with images, annotations, categories")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise CocoFormatError(f"{path}: missing key {key!r} (a list)")
    images: dict[int, dict[str, Any]] = {}
    for n, img in enumerate(data["images"]):
        where = f"{path}: images[{n}]"
        _check_fields(
            img, where, {"id": _is_int, "file_name": _is_relative_path, "height": _is_size, "width": _is_size}
        )
        if img["id"] in images:
            raise CocoFormatError(f"{where}: duplicate image id {img['id']}")
        images[img["id"]] = img
    cats: set[int] = set()
    for n, cat in enumerate(data["categories"]):
        where = f"{path}: categories[{n}]"
        _check_fields(cat, where, {"id": _is_int, "name": lambda v: isinstance(v, str)})
        if cat["id"] in cats:
            raise CocoFormatError(f"{where}: duplicate category id {cat['id']}")
        cats.add(cat["id"])
    ann_ids: set[int] = set()
    for n, ann in enumerate(data["annotations"]):
        where = f"{path}: annotations[{n}]"
        if isinstance(ann, dict) and _is_int(ann.get("id")):
            where += f" (id {ann['id']})"
        _check_fields(ann, where, {"image_id": _is_int, "category_id": _is_int, "segmentation": lambda v: True})
        if "id" in ann:
            if not _is_int(ann["id"]):
                raise CocoFormatError(f"{where}: 'id' must be an integer, got {_short(ann['id'])}")
            if ann["id"] in ann_ids:
                raise CocoFormatError(f"{where}: duplicate annotation id {ann['id']}")
            ann_ids.add(ann["id"])
        if ann["category_id"] not in cats:
            raise CocoFormatError(f"{where}: unknown category_id {ann['category_id']}")
        if ann["image_id"] not in images:
            raise CocoFormatError(f"{where}: unknown image_id {ann['image_id']}")
        if "bbox" in ann and not (
            isinstance(ann["bbox"], list) and len(ann["bbox"]) == 4 and all(map(_is_finite, ann["bbox"]))
        ):
            raise CocoFormatError(f"{where}: 'bbox' must be [x, y, width, height] numbers, got {_short(ann['bbox'])}")
        if ann.get("iscrowd", 0) not in (0, 1) or isinstance(ann.get("iscrowd", 0), float):
            raise CocoFormatError(f"{where}: 'iscrowd' must be 0 or 1, got {_short(ann['iscrowd'])}")
        img = images[ann["image_id"]]
        _check_segmentation(ann["segmentation"], img["height"], img["width"], where)
    return data


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_size(v: Any) -> bool:
    return _is_int(v) and v > 0


def _is_finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _is_relative_path(v: Any) -> bool:
    # A file name must stay inside the image folder: no absolute path, no "..".
    return isinstance(v, str) and bool(v) and not Path(v).is_absolute() and ".." not in Path(v).parts


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_fields(entry: Any, where: str, fields: dict[str, Callable[[Any], bool]]) -> None:
    if not isinstance(entry, dict):
        raise CocoFormatError(f"{where}: expected an object, got {_short(entry)}")
    for key, valid in fields.items():
        if key not in entry:
            raise CocoFormatError(f"{where} has no {key!r}")
        if not valid(entry[key]):
            raise CocoFormatError(f"{where}: bad {key!r}: {_short(entry[key])}")


def _check_segmentation(segm: Any, h: int, w: int, where: str) -> None:
    if isinstance(segm, list):
        if not segm:
            raise CocoFormatError(f"{where}: empty polygon list")
        for poly in segm:
            if not isinstance(poly, list) or len(poly) < 6 or len(poly) % 2:
                raise CocoFormatError(f"{where}: bad polygon (need an even number >= 6 of coordinates)")
            if not all(map(_is_finite, poly)):
                raise CocoFormatError(f"{where}: bad polygon (non-numeric or non-finite coordinate)")
            xs, ys = poly[0::2], poly[1::2]
            if min(xs) < -w or max(xs) > 2 * w or min(ys) < -h or max(ys) > 2 * h:
                raise CocoFormatError(f"{where}: bad polygon (coordinates far outside the {h}x{w} image)")
    elif isinstance(segm, dict):
        if "counts" not in segm or "size" not in segm:
            raise CocoFormatError(f"{where}: bad RLE (needs 'counts' and 'size')")
        if segm["size"] != [h, w]:
            raise CocoFormatError(f"{where}: bad RLE size {_short(segm['size'])} for a {h}x{w} image")
        counts = segm["counts"]
        if isinstance(counts, str):
            counts = _rle_string_counts(counts, where)
        elif not isinstance(counts, list) or not all(map(_is_int, counts)):
            raise CocoFormatError(f"{where}: bad RLE counts (a list of integers or a compressed string)")
        if any(c < 0 for c in counts) or sum(counts) != h * w:
            raise CocoFormatError(f"{where}: bad RLE counts (must be non-negative and sum to {h}*{w})")
    else:
        raise CocoFormatError(f"{where}: segmentation must be polygons (list) or RLE (dict)")


def _rle_string_counts(text: str, where: str) -> list[int]:
    """Decode a compressed RLE string as pycocotools' ``rleFrString`` does, refusing what its C code would misread."""
    counts: list[int] = []
    p = 0
    while p < len(text):
        x, k, more = 0, 0, True
        while more:
            c = ord(text[p]) - 48 if p < len(text) else -1
            # Valid characters are 48..111; more than 6 per count overflows the C decoder's int shift.
            if not 0 <= c < 64 or k == 6:
                raise CocoFormatError(f"{where}: bad RLE counts (malformed compressed string at character {p})")
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p, k = p + 1, k + 1
            if not more and c & 0x10:
                x -= 1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def ann_to_mask(segm: Any, h: int, w: int) -> np.ndarray:
    """Rasterise one COCO segmentation (polygons, uncompressed or compressed RLE) as ``(h, w)`` uint8 0/1."""
    from pycocotools import mask as mask_utils

    if isinstance(segm, list):
        rle = mask_utils.merge(mask_utils.frPyObjects(segm, h, w))
    elif isinstance(segm["counts"], list):
        rle = mask_utils.frPyObjects(segm, h, w)
    else:
        rle = dict(segm, counts=segm["counts"].encode()) if isinstance(segm["counts"], str) else segm
    return np.ascontiguousarray(mask_utils.decode(rle), dtype=np.uint8)


class _COCOBase(FileDataset):
    def _init_coco(
        self, root: str | Path, split: str, year: int | str, ann_file: str | Path | None, image_dir: str | Path | None
    ) -> dict[str, Any]:
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"coco: root {self.root} does not exist; {_layout(self.root, split, year)}")
        ann = Path(ann_file) if ann_file else self.root / "annotations" / f"instances_{split}{year}.json"
        self.image_dir = Path(image_dir) if image_dir else self.root / f"{split}{year}"
        if not self.image_dir.is_dir():
            raise FileNotFoundError(
                f"coco: image folder {self.image_dir} does not exist; {_layout(self.root, split, year)}"
            )
        if not ann.is_file():
            raise FileNotFoundError(f"coco: annotation file {ann} does not exist; {_layout(self.root, split, year)}")
        data = load_coco_json(ann)
        self.ann_path = ann
        self.anns: dict[int, list[dict[str, Any]]] = {img["id"]: [] for img in data["images"]}
        for a in data["annotations"]:
            self.anns[a["image_id"]].append(a)
        return data

    def _check_images(self) -> None:
        """Every listed image file must exist (checked at construction; "skip" drops and reports missing ones)."""
        missing = [img for img in self.items if not (self.image_dir / img["file_name"]).is_file()]
        for img in missing:
            reason = f"{self.image_dir / img['file_name']}: image listed in {self.ann_path} does not exist"
            if self.on_bad_sample == "raise":
                raise BadSampleError(reason)
            self.bad_samples.update([(str(self.image_dir / img["file_name"]), reason)])
        if missing:
            gone = {id(img) for img in missing}
            self.items = [img for img in self.items if id(img) not in gone]

    def item_path(self, index: int) -> str:
        return str(self.image_dir / self.items[index]["file_name"])

    def _read(self, index: int) -> tuple[dict[str, Any], np.ndarray]:
        img = self.items[index]
        path = self.image_dir / img["file_name"]
        image = read_image(path)
        if image.shape[:2] != (img["height"], img["width"]):
            raise BadSampleError(
                f"{path}: size {image.shape[1]}x{image.shape[0]} differs from {img['width']}x{img['height']} "
                f"in {self.ann_path}"
            )
        return img, image


@DATASETS.register("coco")
class COCODataset(_COCOBase):
    """COCO instance segmentation (``annotations/instances_{split}2017.json`` + ``{split}2017/``).

    Targets hold every annotation (polygons and RLE); ``iscrowd`` is kept as a flag; boxes are the
    annotations' ``bbox`` as xyxy clipped to the image (the mask's box when ``bbox`` is absent), and
    degenerate ones (zero or negative width or height) are dropped with their masks, as
    torchvision's reference scripts do (so are annotations whose mask rasterises to no pixel). ``area`` is the mask's pixel count. Category ids are mapped to
    contiguous labels ``1..K`` in id order (0 = background; names in ``class_names``).

    Args:
        root: the COCO folder.
        split: "train" or "val" (or any ``{split}{year}`` naming).
        year: the year in the file names.
        ann_file, image_dir: explicit paths overriding the layout.
        transforms: albumentations ``Compose`` (see ``transforms.instance_train_transforms``).
        drop_empty: drop images with no annotation.
        on_bad_sample: "raise" or "skip".
    """

    task = "instance"
    ignore_index = 255

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        year: int | str = 2017,
        ann_file: str | Path | None = None,
        image_dir: str | Path | None = None,
        transforms: Callable[..., dict[str, Any]] | None = None,
        drop_empty: bool = False,
        on_bad_sample: str = "raise",
    ) -> None:
        self._init_common(transforms, on_bad_sample)
        data = self._init_coco(root, split, year, ann_file, image_dir)
        cats = sorted(data["categories"], key=lambda c: c["id"])
        self.cat_to_label = {c["id"]: i + 1 for i, c in enumerate(cats)}
        self.num_classes = len(cats) + 1
        self.class_names = ("background",) + tuple(c["name"] for c in cats)
        self.palette = default_palette(self.num_classes)
        self.items = [img for img in data["images"] if not (drop_empty and not self.anns[img["id"]])]
        self._check_images()

    def load_raw(self, index: int) -> tuple[np.ndarray, np.ndarray | None, dict[str, Any]]:
        img, image = self._read(index)
        h, w = image.shape[:2]
        masks, labels, crowd, boxes = [], [], [], []
        for a in self.anns[img["id"]]:
            mask = ann_to_mask(a["segmentation"], h, w)
            if "bbox" in a:
                x, y, bw, bh = a["bbox"]
            else:  # no bbox given: the mask's bounding box
                ys, xs = np.nonzero(mask)
                x, y, bw, bh = (
                    (xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()) if len(xs) else (0,) * 4
                )
            box = [max(0.0, x), max(0.0, y), min(float(w), x + bw), min(float(h), y + bh)]
            if box[2] <= box[0] or box[3] <= box[1]:
                continue
            masks.append(mask)
            labels.append(self.cat_to_label[a["category_id"]])
            crowd.append(int(a.get("iscrowd", 0)))
            boxes.append(box)
        return image, None, {"masks": masks, "labels": labels, "iscrowd": crowd, "boxes": boxes}


@DATASETS.register("coco_semantic")
class COCOSemanticDataset(_COCOBase):
    """Semantic masks rasterised from COCO instances (as torchvision's segmentation references do).

    Each annotation (crowd included) paints its label; pixels covered by more than one
    annotation become ``ignore_index``. ``categories="all"``: labels ``1..80`` in id order
    (0 = background); ``categories="voc"``: only the 20 VOC categories, remapped to VOC labels.

    Args:
        root, split, year, ann_file, image_dir: as for ``coco``.
        categories: "all" or "voc".
        transforms: albumentations ``Compose``; None normalises only.
        drop_empty: drop images with no (kept) annotation.
        on_bad_sample: "raise" or "skip".
    """

    task = "semantic"
    ignore_index = 255

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        year: int | str = 2017,
        ann_file: str | Path | None = None,
        image_dir: str | Path | None = None,
        categories: str = "all",
        transforms: Callable[..., dict[str, Any]] | None = None,
        drop_empty: bool = False,
        on_bad_sample: str = "raise",
    ) -> None:
        if categories not in ("all", "voc"):
            raise ValueError(f"coco_semantic: categories must be 'all' or 'voc', got {categories!r}")
        self._init_common(transforms, on_bad_sample)
        data = self._init_coco(root, split, year, ann_file, image_dir)
        if categories == "voc":
            from segkit.datasets.voc import VOC_CLASSES, voc_palette

            self.cat_to_label = {c: i for i, c in enumerate(VOC_COCO_CATEGORIES) if c}
            self.class_names, self.palette = VOC_CLASSES, voc_palette(21)
        else:
            cats = sorted(data["categories"], key=lambda c: c["id"])
            self.cat_to_label = {c["id"]: i + 1 for i, c in enumerate(cats)}
            self.class_names = ("background",) + tuple(c["name"] for c in cats)
            self.palette = default_palette(len(self.class_names))
        self.num_classes = len(self.class_names)
        for img_id, anns in self.anns.items():
            self.anns[img_id] = [a for a in anns if a["category_id"] in self.cat_to_label]
        self.items = [img for img in data["images"] if not (drop_empty and not self.anns[img["id"]])]
        self._check_images()

    def load_raw(self, index: int) -> tuple[np.ndarray, np.ndarray | None, None]:
        img, image = self._read(index)
        h, w = image.shape[:2]
        mask = np.zeros((h, w), np.uint8)
        count = np.zeros((h, w), np.uint8)
        for a in self.anns[img["id"]]:
            m = ann_to_mask(a["segmentation"], h, w).astype(bool)
            mask[m] = self.cat_to_label[a["category_id"]]
            count += m
        mask[count > 1] = self.ignore_index
        return image, mask, None
