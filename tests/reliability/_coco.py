"""Tiny COCO files for the reliability tests: two images and a valid document to break."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

H, W = 12, 16


def coco_base() -> dict:
    """A valid COCO document: 2 images, polygons, compressed and uncompressed RLE, a crowd, 2 categories."""
    from pycocotools import mask as mask_utils

    m = np.zeros((H, W), np.uint8, order="F")
    m[2:6, 3:9] = 1
    compressed = mask_utils.encode(np.asfortranarray(m))
    compressed["counts"] = compressed["counts"].decode()
    return {
        "images": [
            {"id": 1, "file_name": "a.png", "height": H, "width": W},
            {"id": 2, "file_name": "b.png", "height": H, "width": W},
        ],
        "categories": [{"id": 1, "name": "cat"}, {"id": 3, "name": "dog"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[1, 1, 8, 1, 8, 7, 1, 7]],
             "bbox": [1, 1, 7, 6], "iscrowd": 0, "area": 42},
            {"id": 2, "image_id": 1, "category_id": 3, "segmentation": compressed,
             "bbox": [3, 2, 6, 4], "iscrowd": 0, "area": 24},
            {"id": 3, "image_id": 2, "category_id": 3, "segmentation": {"size": [H, W], "counts": [30, 20, H * W - 50]},
             "bbox": [2, 6, 2, 12], "iscrowd": 1, "area": 20},
        ],
    }  # fmt: skip


def write_coco_root(root: Path) -> Path:
    """Write ``val2017/{a,b}.png`` under ``root`` and return the annotation path (not yet written)."""
    rng = np.random.default_rng(0)
    (root / "val2017").mkdir(parents=True, exist_ok=True)
    (root / "annotations").mkdir(exist_ok=True)
    for name in ("a.png", "b.png"):
        Image.fromarray(rng.integers(0, 256, (H, W, 3), dtype=np.uint8)).save(root / "val2017" / name)
    return root / "annotations" / "instances_val2017.json"


def write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data))
