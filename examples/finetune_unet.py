"""Fine-tune a U-Net, evaluate it, predict new images and write a report: the whole workflow in one script.

Runs offline on the built-in synthetic ``shapes`` data::

    python examples/finetune_unet.py            # about a minute on a laptop CPU
    python examples/finetune_unet.py --quick    # tiny sizes, a few steps (used by the tests)

To use your own data, change the ``data`` block of ``CONFIG`` (see ``segkit list datasets`` and
``help(segkit.DATASETS.get(name))`` for each dataset's arguments):

- ``folder``: any ``images/`` + ``masks/`` pair of folders with matching file stems; masks are
  single-channel PNGs of class indices (255 = ignore).
- ``voc``: the Pascal VOC 2012 layout (``VOCdevkit/VOC2012/JPEGImages``, ``SegmentationClass``,
  ``ImageSets/Segmentation/{train,val}.txt``), 21 classes.
- ``camvid``: the SegNet CamVid layout (``train/``, ``trainannot/``, ``val/``, ``valannot/``), 11 classes + void.

For pretrained weights set ``encoder_weights: imagenet`` in the ``model`` block (downloaded once by
smp when online) and lower ``lr`` (1e-4 for the whole network is a safe start); ``configs/`` holds
published recipes for VOC, Cityscapes and CamVid. Set ``num_classes`` in the data block to your
class count (background included); the model takes it from the dataset.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from segkit import Predictor, Trainer
from segkit.config import config_from_dict
from segkit.datasets import build_dataset
from segkit.viz import plot_comparison, plot_overlay, save_figure, write_report

CONFIG: dict[str, Any] = {
    "model": {
        "name": "unet",
        "encoder": "resnet18",
        "encoder_weights": None,
        "decoder_channels": [128, 64, 32, 16, 16],
    },
    "loss": {"name": "ce"},
    "data": {
        "name": "shapes",
        "image_size": 96,
        "num_classes": 4,
        "train": {"split": "train", "num_images": 512},
        "val": {"split": "val", "num_images": 64},
    },
    "train": {"epochs": 6, "batch_size": 16, "lr": 0.003, "scheduler": "poly", "warmup_iters": 20},
}

QUICK = {
    "model": {"decoder_channels": [16, 16, 8, 8, 8]},
    "data": {"image_size": 32, "train": {"split": "train", "num_images": 8}, "val": {"split": "val", "num_images": 4}},
    "train": {"epochs": 1, "batch_size": 8, "warmup_iters": 0, "log_every": 1},
}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Train, evaluate, predict and report; return the metrics and the files written."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes and one epoch (for tests)")
    parser.add_argument("--out", default="runs/finetune_unet", help="output folder")
    args = parser.parse_args(argv)
    out = Path(args.out)

    raw = {k: dict(v) for k, v in CONFIG.items()}
    if args.quick:
        for block, values in QUICK.items():
            raw[block].update(values)
    raw["train"]["out_dir"] = str(out / "run")
    raw["train"]["device"] = "cpu" if args.quick else "auto"

    # 1. train: the config is validated against the registries, then one hop to the Trainer.
    cfg = config_from_dict(raw)
    trainer = Trainer.from_config(cfg)
    trainer.fit()

    # 2. evaluate the final weights on the validation split; load best.pt for predictions.
    predictor = Predictor.from_checkpoint(out / "run" / "best.pt", device=trainer.device)
    metrics = trainer.validate()
    print(trainer.last_confusion.table())

    # 3. predict images the model never saw (here: the held-out shapes split; use file paths for yours).
    test = build_dataset("shapes", split="test", num_images=2, image_size=raw["data"]["image_size"])
    written = []
    for i in range(len(test)):
        image, truth, _, _ = test.generate(i)
        mask = predictor.predict(image)
        Image.fromarray(image).save(out / f"test_{i}.png")
        written.append(
            save_figure(plot_overlay(image, mask, predictor.palette, predictor.class_names), out / f"overlay_{i}.png")
        )
        fig = plot_comparison(image, truth, mask, predictor.palette, predictor.class_names)
        written.append(save_figure(fig, out / f"comparison_{i}.png"))
        print(f"test image {i}: {np.mean(mask == truth):.1%} of pixels right")

    # 4. training report: curves, confusion matrix, worst validation images.
    report = write_report(out / "run", out / "report", num_worst=2 if args.quick else 6, device=str(trainer.device))
    print("wrote", *[str(p) for p in written + report], sep="\n  ")
    return {"miou": metrics["miou"], "figures": written, "report": report, "checkpoint": out / "run" / "best.pt"}


if __name__ == "__main__":
    main()
