"""Data loading speed: segkit dataset + presets through a DataLoader vs a hand-written albumentations + cv2 loop.

Usage:
    python bench/data.py                                  # 64 generated 480x360 JPEG/PNG pairs (folder layout)
    python bench/data.py --root /path/to/CamVid --split train   # real CamVid, SegNet layout

Both sides read the same files, apply the same augmentation steps (random scale, pad, crop, flip,
colour jitter, normalise) and build the same batches; the table gives images/s (best of interleaved rounds; the first round also warms up workers).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import albumentations as A  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from segkit.datasets import build_dataset, collate_semantic  # noqa: E402
from segkit.datasets.base import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402
from segkit.datasets.transforms import train_transforms  # noqa: E402


def make_files(folder: Path, count: int, h: int = 360, w: int = 480) -> None:
    """Write ``count`` smooth random JPEG images and PNG index masks in the ``folder`` layout."""
    rng = np.random.default_rng(0)
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    yy, xx = np.mgrid[0:h, 0:w]
    for i in range(count):
        base = rng.uniform(0, 255, 3)
        image = np.clip(base + 60 * np.sin(xx[..., None] / rng.uniform(5, 40) + yy[..., None] / 30.0), 0, 255)
        image = (image + rng.normal(0, 10, image.shape)).clip(0, 255).astype(np.uint8)
        cv2.imwrite(str(folder / "images" / f"{i:04d}.jpg"), image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
        mask = ((xx // 60 + yy // 45 + i) % 11).astype(np.uint8)
        cv2.imwrite(str(folder / "masks" / f"{i:04d}.png"), mask)


def plain_loop(pairs: list[tuple[str, str]], crop: int, batch_size: int, lut: np.ndarray | None, seed: int) -> int:
    """The peer: cv2 decode, albumentations, stack; single process. Returns the number of images."""
    aug = A.Compose(
        [
            A.RandomScale(scale_limit=(-0.5, 1.0), p=1.0),
            A.PadIfNeeded(min_height=crop, min_width=crop, border_mode=0, fill=0, fill_mask=255),
            A.RandomCrop(height=crop, width=crop),
            A.HorizontalFlip(p=0.5),
            A.ColorJitter(0.2, 0.2, 0.2, 0.0, p=0.8),
            A.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD),
        ],
        seed=seed,
    )
    images, masks, n = [], [], 0
    for image_path, mask_path in pairs:
        image = cv2.cvtColor(cv2.imread(image_path, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        mask = cv2.imread(mask_path, cv2.IMREAD_UNCHANGED)
        if lut is not None:
            mask = lut[mask]
        out = aug(image=image, mask=mask)
        images.append(torch.from_numpy(out["image"].transpose(2, 0, 1).copy()))
        masks.append(torch.from_numpy(out["mask"].astype(np.int64)))
        if len(images) == batch_size:
            torch.stack(images), torch.stack(masks)
            n += len(images)
            images, masks = [], []
    if images:
        torch.stack(images), torch.stack(masks)
        n += len(images)
    return n


def time_epochs(fn, epochs: int = 2) -> float:  # type: ignore[no-untyped-def]
    """Images/s of the last of ``epochs`` runs of ``fn`` (the first warms up caches and workers)."""
    rate = 0.0
    for _ in range(epochs):
        t0 = time.perf_counter()
        n = fn()
        rate = n / (time.perf_counter() - t0)
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", help="a CamVid folder (SegNet layout); default: generated files")
    parser.add_argument("--split", default="train")
    parser.add_argument("--count", type=int, default=64, help="generated images")
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=4, help="interleaved timed rounds (best kept)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    tmp = None
    transforms = train_transforms(args.crop)
    if args.root:
        ds = build_dataset("camvid", root=args.root, split=args.split, transforms=transforms)
        lut = ds.table.lut
        source = f"CamVid {args.split} at {args.root}"
    else:
        tmp = tempfile.TemporaryDirectory()
        make_files(Path(tmp.name), args.count)
        ds = build_dataset("folder", root=tmp.name, num_classes=11, transforms=transforms)
        lut = None
        source = f"{args.count} generated 480x360 JPEG + PNG pairs"
    pairs = [(str(a), str(b)) for a, b in ds.items]
    print(f"data loading, {source}, crop {args.crop}, batch {args.batch_size}, {os.cpu_count()} CPUs")
    runs: list[tuple[str, int, Callable[[], int]]] = [
        ("plain albumentations + cv2 loop", 0, lambda: plain_loop(pairs, args.crop, args.batch_size, lut, seed[0]))
    ]
    for workers in (0, 1, 2):
        loader = DataLoader(
            ds,
            batch_size=args.batch_size,
            shuffle=False,  # file order, like the plain loop
            num_workers=workers,
            collate_fn=collate_semantic,
            persistent_workers=workers > 0,
        )
        name = f"segkit {type(ds).__name__} + DataLoader"
        runs.append((name, workers, lambda loader=loader: sum(len(b["path"]) for b in loader)))
    # Each round seeds both in-process pipelines alike, so they draw the same scales, crops and jitter for
    # the same files and the ratio measures the code, not the luck of the draw (a random scale between
    # 0.5x and 2x changes an image's cost fourfold). Worker processes draw their own numbers.
    seed = [0]
    # Interleaved rounds, best of each: a shared machine's load hits every row alike.
    best = [0.0] * len(runs)
    for r in range(args.rounds):
        seed[0] = r
        for k, (_, workers, fn) in enumerate(runs):
            if k > 0 and workers == 0:
                transforms.set_random_seed(r)
            best[k] = max(best[k], time_epochs(fn, epochs=1))
    rows = [(name, workers, rate) for (name, workers, _), rate in zip(runs, best)]
    peer = rows[0][2]
    print(f"{'loader':<40} {'workers':>7} {'images/s':>9} {'vs plain':>9}")
    for name, workers, rate in rows:
        print(f"{name:<40} {workers:>7} {rate:>9.1f} {rate / peer:>8.2f}x")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
