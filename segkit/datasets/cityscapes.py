"""``cityscapes``: leftImg8bit + gtFine/gtCoarse, labelIds mapped to the 19 train ids; instances from instanceIds."""

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

__all__ = ["CITYSCAPES_LABELS", "CityscapesDataset"]

# The official table (cityscapesScripts helpers/labels.py): (name, id, trainId, hasInstances, colour).
CITYSCAPES_LABELS = (
    ("unlabeled", 0, 255, False, (0, 0, 0)),
    ("ego vehicle", 1, 255, False, (0, 0, 0)),
    ("rectification border", 2, 255, False, (0, 0, 0)),
    ("out of roi", 3, 255, False, (0, 0, 0)),
    ("static", 4, 255, False, (0, 0, 0)),
    ("dynamic", 5, 255, False, (111, 74, 0)),
    ("ground", 6, 255, False, (81, 0, 81)),
    ("road", 7, 0, False, (128, 64, 128)),
    ("sidewalk", 8, 1, False, (244, 35, 232)),
    ("parking", 9, 255, False, (250, 170, 160)),
    ("rail track", 10, 255, False, (230, 150, 140)),
    ("building", 11, 2, False, (70, 70, 70)),
    ("wall", 12, 3, False, (102, 102, 156)),
    ("fence", 13, 4, False, (190, 153, 153)),
    ("guard rail", 14, 255, False, (180, 165, 180)),
    ("bridge", 15, 255, False, (150, 100, 100)),
    ("tunnel", 16, 255, False, (150, 120, 90)),
    ("pole", 17, 5, False, (153, 153, 153)),
    ("polegroup", 18, 255, False, (153, 153, 153)),
    ("traffic light", 19, 6, False, (250, 170, 30)),
    ("traffic sign", 20, 7, False, (220, 220, 0)),
    ("vegetation", 21, 8, False, (107, 142, 35)),
    ("terrain", 22, 9, False, (152, 251, 152)),
    ("sky", 23, 10, False, (70, 130, 180)),
    ("person", 24, 11, True, (220, 20, 60)),
    ("rider", 25, 12, True, (255, 0, 0)),
    ("car", 26, 13, True, (0, 0, 142)),
    ("truck", 27, 14, True, (0, 0, 70)),
    ("bus", 28, 15, True, (0, 60, 100)),
    ("caravan", 29, 255, True, (0, 0, 90)),
    ("trailer", 30, 255, True, (0, 0, 110)),
    ("train", 31, 16, True, (0, 80, 100)),
    ("motorcycle", 32, 17, True, (0, 0, 230)),
    ("bicycle", 33, 18, True, (119, 11, 32)),
)
_TRAIN = sorted((t, n, c) for n, i, t, _, c in CITYSCAPES_LABELS if t != 255)
# The 8 instance classes that have a train id (caravan and trailer do not); label k+1 for Mask R-CNN.
_INSTANCE_IDS = [i for n, i, t, inst, _ in CITYSCAPES_LABELS if inst and t != 255]
_LAYOUT = (
    "expected leftImg8bit/{split}/{city}/*_leftImg8bit.png and "
    "{gtFine|gtCoarse}/{split}/{city}/*_{gtFine|gtCoarse}_labelIds.png (and *_instanceIds.png for instances)"
)


@DATASETS.register("cityscapes")
class CityscapesDataset(FileDataset):
    """Cityscapes, read from the distributed ``leftImg8bit`` and ``gtFine``/``gtCoarse`` folders.

    ``labelIds`` are mapped to the 19 train ids with the official table; other ids become 255.
    With ``task="instance"`` the target holds one mask per instance of the 8 instance classes
    (``instanceIds // 1000`` = label id; values below 1000 are groups without instances and are
    left out), labelled 1..8 in train-id order (0 = background): person, rider, car, truck, bus,
    train, motorcycle, bicycle.

    Args:
        root: the folder holding ``leftImg8bit`` and ``gtFine`` (or ``gtCoarse``).
        split: "train", "val", "test" (fine) or "train", "train_extra", "val" (coarse).
        mode: "fine" or "coarse".
        task: "semantic" or "instance".
        transforms: albumentations ``Compose``; None normalises only.
        on_bad_sample: "raise" or "skip".
        check_files: check at construction that every label exists and matches its image size.
    """

    ignore_index = 255

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        mode: str = "fine",
        task: str = "semantic",
        transforms: Callable[..., dict[str, Any]] | None = None,
        on_bad_sample: str = "raise",
        check_files: bool = True,
    ) -> None:
        if mode not in ("fine", "coarse"):
            raise ValueError(f"cityscapes: mode must be 'fine' or 'coarse', got {mode!r}")
        if task not in ("semantic", "instance"):
            raise ValueError(f"cityscapes: task must be 'semantic' or 'instance', got {task!r}")
        self._init_common(transforms, on_bad_sample)
        self.root, self.split, self.mode, self.task = Path(root), split, mode, task
        gt = "gtFine" if mode == "fine" else "gtCoarse"
        images_dir, labels_dir = self.root / "leftImg8bit" / split, self.root / gt / split
        for d in (images_dir, labels_dir):
            if not d.is_dir():
                raise FileNotFoundError(f"cityscapes: folder {d} does not exist; {_LAYOUT}")
        images = sorted(images_dir.glob("*/*_leftImg8bit.png"))
        if not images:
            raise FileNotFoundError(f"cityscapes: no *_leftImg8bit.png files under {images_dir}; {_LAYOUT}")
        self.items = []
        for img in images:
            stem = img.name[: -len("_leftImg8bit.png")]
            base = labels_dir / img.parent.name / f"{stem}_{gt}_"
            self.items.append((img, Path(f"{base}labelIds.png"), Path(f"{base}instanceIds.png")))
        if check_files:
            check_items(self.items, on_bad_sample, self.bad_samples, cols=(1, 2) if task == "instance" else (1,))
        self.table = LabelTable(19, {i: t for _, i, t, _, _ in CITYSCAPES_LABELS}, ignore_index=255)
        if task == "instance":
            self.num_classes = 1 + len(_INSTANCE_IDS)
            self.class_names = ("background",) + tuple(n for n, i, *_ in CITYSCAPES_LABELS if i in _INSTANCE_IDS)
            self.palette = np.asarray(
                [(0, 0, 0)] + [c for n, i, t, h, c in CITYSCAPES_LABELS if i in _INSTANCE_IDS], np.uint8
            )
        else:
            self.num_classes = 19
            self.class_names = tuple(n for _, n, _ in _TRAIN)
            self.palette = np.asarray([c for _, _, c in _TRAIN], np.uint8)

    def load_raw(self, index: int) -> tuple[np.ndarray, np.ndarray | None, dict[str, Any] | None]:
        image_path, label_path, inst_path = self.items[index]
        image, ids = read_image(image_path), read_mask(label_path)
        check_decoded(image, ids, image_path, label_path)
        mask = self.table(ids, label_path)
        if self.task == "semantic":
            return image, mask, None
        inst_ids = read_mask(inst_path)
        if inst_ids.ndim != 2:
            raise BadSampleError(
                f"{inst_path}: expected a single-channel 16-bit instanceIds PNG, got shape {inst_ids.shape}"
            )
        check_decoded(image, inst_ids, image_path, inst_path)
        values = np.unique(inst_ids)
        values = values[(values >= 1000) & np.isin(values // 1000, _INSTANCE_IDS)]
        masks = [(inst_ids == v).astype(np.uint8) for v in values]
        labels = [_INSTANCE_IDS.index(int(v) // 1000) + 1 for v in values]
        return image, mask, {"masks": masks, "labels": labels, "iscrowd": [0] * len(labels)}
