"""``voc`` and ``voc_aug``: PASCAL VOC 2012 segmentation, and its SBD extension (train_aug)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from segkit.datasets.bad_samples import BadSampleError
from segkit.datasets.decoding import read_image, read_mask
from segkit.datasets.file_dataset import FileDataset, check_decoded, check_items
from segkit.datasets.label_tables import LabelTable
from segkit.datasets.registry import DATASETS

__all__ = ["VOC_CLASSES", "VOCAugDataset", "VOCDataset", "voc_palette"]

VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip

_LAYOUT = (
    "expected VOCdevkit/VOC2012/{JPEGImages/*.jpg, SegmentationClass/*.png, "
    "ImageSets/Segmentation/{train,val,trainval}.txt}"
)


def voc_palette(n: int = 256) -> np.ndarray:
    """The VOC colour map (bit-interleaved), ``(n, 3)`` uint8: the palette stored in VOC label PNGs."""
    out = np.zeros((n, 3), np.uint8)
    for i in range(n):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        out[i] = (r, g, b)
    return out


def find_voc_root(root: str | Path) -> Path:
    """Accept the folder holding ``VOCdevkit``, ``VOCdevkit`` itself, or ``VOC2012``; return ``VOC2012``."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"voc: root {root} does not exist; {_LAYOUT}")
    for cand in (root / "VOCdevkit" / "VOC2012", root / "VOC2012", root):
        if (cand / "JPEGImages").is_dir():
            return cand
    raise FileNotFoundError(f"voc: no JPEGImages folder under {root}; {_LAYOUT}")


def read_split(path: Path, what: str, layout: str) -> list[str]:
    """Read a split list: one id per line (or an image path and a label path: the first stem is kept)."""
    if not path.is_file():
        raise FileNotFoundError(f"{what}: split file {path} does not exist; {layout}")
    ids = []
    for line in path.read_text().splitlines():
        if line.strip():
            ids.append(Path(line.split()[0]).stem)
    return ids


@DATASETS.register("voc")
class VOCDataset(FileDataset):
    """PASCAL VOC 2012 semantic segmentation, read from the distributed ``VOCdevkit`` folders.

    Label PNGs are palette images read as indices (not colours): 21 classes, 255 (object
    borders) = ignore.

    Args:
        root: the folder holding ``VOCdevkit`` (or ``VOCdevkit`` / ``VOC2012`` itself).
        split: "train", "val", "trainval" (``ImageSets/Segmentation/{split}.txt``) or a list file path.
        transforms: albumentations ``Compose`` applied to image and mask; None normalises only.
        on_bad_sample: "raise" or "skip" (see ``FileDataset``).
        check_files: check at construction that every label exists and matches its image size
            (reads file headers only).
    """

    num_classes = 21
    class_names = VOC_CLASSES
    palette = voc_palette(21)
    ignore_index = 255
    task = "semantic"

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        transforms: Callable[..., dict[str, Any]] | None = None,
        on_bad_sample: str = "raise",
        check_files: bool = True,
    ) -> None:
        self._init_common(transforms, on_bad_sample)
        self.root = find_voc_root(root)
        split_file = (
            Path(split) if split.endswith(".txt") else self.root / "ImageSets" / "Segmentation" / f"{split}.txt"
        )
        ids = read_split(split_file, "voc", _LAYOUT)
        self.items = [
            (self.root / "JPEGImages" / f"{i}.jpg", self.root / "SegmentationClass" / f"{i}.png") for i in ids
        ]
        self.table = LabelTable(21, ignore_index=255)
        if check_files:
            check_items(self.items, on_bad_sample, self.bad_samples)

    def load_raw(self, index: int) -> tuple[np.ndarray, np.ndarray | None, None]:
        image_path, mask_path = self.items[index]
        image, mask = read_image(image_path), read_mask(mask_path)
        if mask.ndim == 3:
            raise BadSampleError(f"{mask_path}: an RGB label image; VOC labels are palette PNGs read as indices")
        check_decoded(image, mask, image_path, mask_path)
        return image, self.table(mask, mask_path), None


@DATASETS.register("voc_aug")
class VOCAugDataset(FileDataset):
    """VOC 2012 plus the SBD annotations (the 10,582-image ``train_aug`` set).

    Labels come, per image id, from ``SegmentationClassAug/{id}.png`` (the common ready-made
    folder) if present, else ``SegmentationClass/{id}.png``, else SBD's ``cls/{id}.mat``
    (``GTcls.Segmentation``, read with scipy). Images come from ``JPEGImages`` or SBD's ``img``.

    Args:
        root: VOC root (as for ``voc``).
        split: "train_aug", "val", ... : the list ``{split}.txt`` looked up in
            ``ImageSets/Segmentation/``, ``SegmentationClassAug/..`` and the VOC root; or a list path.
            Without a ``train_aug.txt`` and with ``sbd_root``, train_aug is built the usual way:
            SBD train + SBD val + VOC train, minus VOC val.
        sbd_root: the SBD ``dataset`` folder (``benchmark_RELEASE/dataset`` with ``img/``, ``cls/``,
            ``train.txt``, ``val.txt``), or None.
        transforms, on_bad_sample, check_files: as for ``voc`` (checks apply to PNG labels).
    """

    num_classes = 21
    class_names = VOC_CLASSES
    palette = voc_palette(21)
    ignore_index = 255
    task = "semantic"

    def __init__(
        self,
        root: str | Path,
        split: str = "train_aug",
        sbd_root: str | Path | None = None,
        transforms: Callable[..., dict[str, Any]] | None = None,
        on_bad_sample: str = "raise",
        check_files: bool = True,
    ) -> None:
        self._init_common(transforms, on_bad_sample)
        self.root = find_voc_root(root)
        self.sbd_root = Path(sbd_root) if sbd_root is not None else None
        layout = (
            _LAYOUT + " plus SegmentationClassAug/*.png and a train_aug.txt list, or sbd_root="
            "benchmark_RELEASE/dataset with {img/*.jpg, cls/*.mat, train.txt, val.txt}"
        )
        if self.sbd_root is not None and not (self.sbd_root / "cls").is_dir():
            raise FileNotFoundError(f"voc_aug: no cls folder under sbd_root {self.sbd_root}; {layout}")
        ids = self._ids(split, layout)
        self.items = [self._locate(i, layout) for i in ids]
        self.table = LabelTable(21, ignore_index=255)
        if check_files:
            pngs = [it for it in self.items if it[1].suffix == ".png"]
            check_items(pngs, on_bad_sample, self.bad_samples)
            kept = set(pngs)
            self.items = [it for it in self.items if it[1].suffix != ".png" or it in kept]

    def _ids(self, split: str, layout: str) -> list[str]:
        if split.endswith(".txt"):
            return read_split(Path(split), "voc_aug", layout)
        candidates = [
            self.root / "ImageSets" / "Segmentation" / f"{split}.txt",
            self.root / "SegmentationClassAug" / ".." / f"{split}.txt",
            self.root / f"{split}.txt",
        ]
        for c in candidates:
            if c.is_file():
                return read_split(c, "voc_aug", layout)
        if split == "train_aug" and self.sbd_root is not None:
            seg = self.root / "ImageSets" / "Segmentation"
            voc_val = set(read_split(seg / "val.txt", "voc_aug", layout))
            ids = read_split(self.sbd_root / "train.txt", "voc_aug", layout)
            ids += read_split(self.sbd_root / "val.txt", "voc_aug", layout)
            ids += read_split(seg / "train.txt", "voc_aug", layout)
            return sorted(set(ids) - voc_val)
        raise FileNotFoundError(
            f"voc_aug: split file {candidates[0]} does not exist (also looked for {candidates[2]}); {layout}"
        )

    def _locate(self, image_id: str, layout: str) -> tuple[Path, Path]:
        image = self.root / "JPEGImages" / f"{image_id}.jpg"
        if not image.is_file() and self.sbd_root is not None:
            image = self.sbd_root / "img" / f"{image_id}.jpg"
        labels = [
            self.root / "SegmentationClassAug" / f"{image_id}.png",
            self.root / "SegmentationClass" / f"{image_id}.png",
        ]
        if self.sbd_root is not None:
            labels.append(self.sbd_root / "cls" / f"{image_id}.mat")
        for label in labels:
            if label.is_file():
                return image, label
        if self.on_bad_sample == "raise":
            raise BadSampleError(f"{image}: no label file (looked for {', '.join(str(p) for p in labels)})")
        return image, labels[0]

    def load_raw(self, index: int) -> tuple[np.ndarray, np.ndarray | None, None]:
        image_path, mask_path = self.items[index]
        image = read_image(image_path)
        mask = read_sbd_mat(mask_path) if mask_path.suffix == ".mat" else read_mask(mask_path)
        if mask.ndim == 3:
            raise BadSampleError(f"{mask_path}: an RGB label image; VOC labels are palette PNGs read as indices")
        check_decoded(image, mask, image_path, mask_path)
        return image, self.table(mask, mask_path), None


def read_sbd_mat(path: str | Path) -> np.ndarray:
    """Read ``GTcls.Segmentation`` from an SBD ``cls/*.mat`` file as ``(H, W)`` uint8."""
    import scipy.io

    try:
        mat = scipy.io.loadmat(str(path))
        seg = mat["GTcls"][0, 0]["Segmentation"]
    except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise BadSampleError(f"{path}: not an SBD cls .mat file with GTcls.Segmentation ({exc})") from None
    return np.asarray(seg, dtype=np.uint8)
