"""``shapes``: a synthetic dataset generated on the fly (no files), for demos, examples and tests."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from segkit.datasets.base import SegmentationDataset, default_palette, to_sample
from segkit.datasets.instance_targets import instance_target
from segkit.datasets.registry import DATASETS
from segkit.datasets.transforms import build_transforms

__all__ = ["ShapesDataset", "SHAPE_KINDS"]

SHAPE_KINDS = ("circle", "square", "triangle", "diamond", "ring")
_SPLIT_STREAMS = {"train": 0, "val": 1, "test": 2}


@DATASETS.register("shapes")
class ShapesDataset(SegmentationDataset):
    """Synthetic shapes (circle, square, triangle, ...) on textured, noisy backgrounds.

    Every sample is generated from ``(seed, split, index)`` alone, so it is the same on every
    call, in every worker and on every machine. Objects get random positions, sizes, rotations
    and colours, and may overlap (a later object hides an earlier one; no object keeps less
    than half of its area visible). Classes are decided by shape, never by colour.

    Args:
        split: "train", "val" or "test" (independent random streams).
        num_images: length of the dataset.
        image_size: ``S`` or ``(H, W)`` in pixels.
        num_classes: background plus ``num_classes - 1`` shape kinds, 2 to 6.
        max_objects: at most this many objects per image (at least one).
        seed: base seed.
        task: "semantic" (samples hold ``mask``) or "instance" (they also hold ``target``).
        transforms: albumentations ``Compose`` (or any callable with its interface) applied to
            image and masks together, or a mapping of ``train_transforms`` options (a config's
            ``transforms: {hflip: 0.5, scale: [0.75, 1.25], color_jitter: 0}``); None normalises with
            ImageNet statistics only. Instance masks leave the transform as the pixels equal to 1 (padding is
            not part of an object); an object with no pixel left is dropped.
        min_size, max_size: object radius as a fraction of the shorter image side.
        rotate: rotate each object by a random angle (False: every shape keeps one orientation; the
            layout, sizes and colours stay the same).

    Sample:
        ``image`` float32 ``(3, H, W)``; ``mask`` int64 ``(H, W)`` in ``[0, num_classes)``;
        with ``task="instance"``, ``target`` = ``boxes`` float32 ``(K, 4)`` xyxy (pixel edges:
        ``x2 = last column + 1``), ``labels`` int64 ``(K,)`` in ``[1, num_classes)``, ``masks``
        uint8 ``(K, H, W)`` (visible part), ``image_id``, ``area`` (visible pixels), ``iscrowd`` zeros.
    """

    def __init__(
        self,
        split: str = "train",
        num_images: int = 256,
        image_size: int | tuple[int, int] | list[int] = 96,
        num_classes: int = 4,
        max_objects: int = 4,
        seed: int = 0,
        task: str = "semantic",
        transforms: Callable[..., dict[str, Any]] | Mapping[str, Any] | None = None,
        min_size: float = 0.08,
        max_size: float = 0.22,
        rotate: bool = True,
    ) -> None:
        if split not in _SPLIT_STREAMS:
            raise ValueError(f"shapes: split must be one of {sorted(_SPLIT_STREAMS)}, got {split!r}")
        if not 2 <= num_classes <= len(SHAPE_KINDS) + 1:
            raise ValueError(f"shapes: num_classes must be in [2, {len(SHAPE_KINDS) + 1}], got {num_classes}")
        if task not in ("semantic", "instance"):
            raise ValueError(f"shapes: task must be 'semantic' or 'instance', got {task!r}")
        if max_objects < 1 or num_images < 1:
            raise ValueError("shapes: num_images and max_objects must be at least 1")
        self.split = split
        self.num_images = int(num_images)
        size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        self.image_size: tuple[int, int] = (int(size[0]), int(size[1]))
        self.num_classes = int(num_classes)
        self.class_names = ("background",) + SHAPE_KINDS[: num_classes - 1]
        self.palette = default_palette(self.num_classes)
        self.max_objects = int(max_objects)
        self.seed = int(seed)
        self.task = task
        if isinstance(transforms, Mapping) and transforms.get("preset", "train") == "train":
            transforms = {"crop_size": list(self.image_size), **transforms}  # crops default to the image size
        self.transforms = build_transforms(transforms, name="shapes", quiet=True)
        self.min_size = float(min_size)
        self.max_size = float(max_size)
        self.rotate = bool(rotate)

    def __len__(self) -> int:
        return self.num_images

    def generate(self, index: int) -> tuple[np.ndarray, np.ndarray, list[np.ndarray], list[int]]:
        """Return the raw sample ``index``: image ``(H, W, 3)`` uint8, mask ``(H, W)`` uint8,
        visible instance masks (bool ``(H, W)`` each) and their labels."""
        if not 0 <= index < self.num_images:
            raise IndexError(f"shapes: index {index} out of range for {self.num_images} images")
        rng = np.random.default_rng([self.seed, _SPLIT_STREAMS[self.split], index])
        h, w = self.image_size
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5
        image, base = _background(rng, yy, xx)
        colours: list[np.ndarray] = []
        mask = np.zeros((h, w), np.uint8)
        visible: list[np.ndarray] = []
        full_area: list[int] = []
        labels: list[int] = []
        side = min(h, w)
        for _ in range(int(rng.integers(1, self.max_objects + 1))):
            for _attempt in range(10):
                label = int(rng.integers(1, self.num_classes))
                radius = rng.uniform(self.min_size, self.max_size) * side
                cy, cx = rng.uniform(radius * 0.6, h - radius * 0.6), rng.uniform(radius * 0.6, w - radius * 0.6)
                shape = _rasterise(
                    SHAPE_KINDS[label - 1], yy, xx, cy, cx, radius, rng.uniform(0, 2 * np.pi) * self.rotate
                )
                area = int(shape.sum())
                if area < 12:
                    continue
                # Reject an object that would hide more than half of an earlier one.
                if any(int((v & ~shape).sum()) * 2 < a for v, a in zip(visible, full_area)):
                    continue
                visible = [v & ~shape for v in visible]
                visible.append(shape)
                full_area.append(area)
                labels.append(label)
                colour = _distinct_colour(rng, [base, *colours])
                colours.append(colour)
                shade = 1.0 + 0.15 * (yy - cy) / max(radius, 1.0)
                image[shape] = np.clip(colour[None, :] * shade[shape][:, None], 0, 255)
                mask[shape] = label
                break
        noise = rng.normal(0, 8.0, size=image.shape)
        image = np.clip(image + noise, 0, 255).astype(np.uint8)
        return image, mask, visible, labels

    def __getitem__(self, index: int) -> dict[str, Any]:
        image, mask, visible, labels = self.generate(index)
        path = f"shapes://{self.split}/{index}"
        if self.task == "semantic":
            return to_sample(image, mask, self.transforms, path)
        inst = [v.astype(np.uint8) for v in visible]
        if self.transforms is not None:
            out = (
                self.transforms(image=image, mask=mask, masks=inst) if inst else self.transforms(image=image, mask=mask)
            )
            image, mask, inst = out["image"], out["mask"], list(out.get("masks", []))
        target = instance_target([np.asarray(m) == 1 for m in inst], labels, index)
        return to_sample(image, mask, None, path, target=target)


def _background(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A smooth random texture (sinusoids of random frequency and phase over a base colour), and that colour."""
    h, w = yy.shape
    base = rng.uniform(40, 215, size=3).astype(np.float32)
    texture = np.zeros((h, w), np.float32)
    for _ in range(3):
        fy, fx = rng.uniform(0.5, 4.0, size=2) * 2 * np.pi / np.array([h, w])
        texture += np.sin(fy * yy + fx * xx + rng.uniform(0, 2 * np.pi)).astype(np.float32)
    amp = rng.uniform(10, 40, size=3).astype(np.float32)
    return np.clip(base[None, None, :] + texture[..., None] * amp[None, None, :] / 3, 0, 255), base


def _distinct_colour(rng: np.random.Generator, others: list[np.ndarray], min_distance: float = 90.0) -> np.ndarray:
    """A random RGB colour at least ``min_distance`` away from each of ``others`` (best of 20 draws).

    Objects must stand out from the background and from each other, or their shape (and hence
    their class) would be undefined.
    """
    best, best_d = None, -1.0
    for _ in range(20):
        c = rng.uniform(0, 255, size=3)
        d = min(float(np.linalg.norm(c - o)) for o in others)
        if d >= min_distance:
            return c
        if d > best_d:
            best, best_d = c, d
    return best  # type: ignore[return-value]


def _rasterise(kind: str, yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, r: float, angle: float) -> np.ndarray:
    """Boolean ``(H, W)`` mask of one shape of circumradius ``r`` centred at ``(cy, cx)``."""
    dy, dx = yy - cy, xx - cx
    c, s = np.cos(angle), np.sin(angle)
    u, v = c * dx + s * dy, -s * dx + c * dy
    if kind == "circle":
        return dx * dx + dy * dy <= r * r
    if kind == "square":
        half = r / np.sqrt(2.0)
        return (np.abs(u) <= half) & (np.abs(v) <= half)
    if kind == "diamond":
        return np.abs(u) / r + np.abs(v) / (0.6 * r) <= 1.0
    if kind == "ring":
        d2 = dx * dx + dy * dy
        return (d2 <= r * r) & (d2 >= (0.55 * r) ** 2)
    if kind == "triangle":
        angles = angle + np.array([0.0, 2 * np.pi / 3, 4 * np.pi / 3])
        vy, vx = cy + r * np.sin(angles), cx + r * np.cos(angles)
        inside = np.ones_like(yy, dtype=bool)
        for i in range(3):
            j = (i + 1) % 3
            # Counter-clockwise vertices: the interior lies left of every edge.
            cross = (vx[j] - vx[i]) * (yy - vy[i]) - (vy[j] - vy[i]) * (xx - vx[i])
            inside &= cross >= 0
        return inside
    raise ValueError(f"unknown shape kind {kind!r}")


def write_images(out_dir: str, count: int = 4, split: str = "test", **dataset_kwargs: Any) -> list[str]:
    """Write ``count`` shapes images as PNG files to ``out_dir`` and return their paths.

    Args:
        out_dir: folder (created if missing).
        count: number of images.
        split: "train", "val" or "test" (held-out images: "test").
        **dataset_kwargs: ``ShapesDataset`` options (``image_size``, ``min_size``, ``rotate``, ...), so the
            images follow the same distribution as a config's ``data`` block.
    """
    from pathlib import Path

    from PIL import Image

    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    ds = ShapesDataset(split=split, num_images=count, **dataset_kwargs)
    paths = []
    for i in range(count):
        image, _, _, _ = ds.generate(i)
        path = folder / f"shapes_{split}_{i:03d}.png"
        Image.fromarray(image).save(path)
        paths.append(str(path))
    return paths
