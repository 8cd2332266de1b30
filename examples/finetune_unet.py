"""Fine-tune a U-Net on a new task from a checkpoint trained on another, then evaluate, predict and report.

Runs offline on the built-in synthetic ``shapes`` data::

    python examples/finetune_unet.py            # a few minutes on a laptop CPU
    python examples/finetune_unet.py --quick    # tiny sizes, a few steps (used by the tests)
    python examples/finetune_unet.py --pretrained runs/other/best.pt   # start from your own checkpoint

1. **Pretrain** (or load ``--pretrained``): U-Net on shapes with 4 classes (background, circle, square, triangle).
2. **A new task with other classes**, written to disk as your own data would be: a folder with ``train/`` and
   ``val/``, each holding ``images/`` (JPEG) and ``masks/`` (PNG), of shapes with 6 classes (+ diamond, ring).
3. **Fine-tune**: ``model: {..., weights: pretrained}`` (``build_model(..., weights=...)``) loads every tensor that fits and gives
   the model a new 6-class head (one line names the tensors not loaded); the Trainer freezes the encoder for
   the first epoch (``freeze="encoder", unfreeze_at=1``: its BatchNorm statistics stay as pretrained), then
   trains it at a tenth of the learning rate (``lr_mult={"encoder": 0.1}``) after a short warm-up of its own.
4. **The same steps from scratch**, for comparison; both mIoU are printed.
5. Predict held-out images, write overlays and the training report.

For your own data, point ``--data`` at a folder (docs/your_data.md) and ``--pretrained`` at a checkpoint. To
start from ImageNet instead, build the model with ``encoder_weights="imagenet"`` (downloaded once by smp when
online) or ``encoder_weights="path/to/resnet18-f37072fd.pth"`` (a pretrained torchvision file copied from an
online machine; docs/models.md, "Weights from files").
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from segkit import Predictor, Trainer, build_dataset
from segkit.config import config_from_dict
from segkit.datasets.shapes import SHAPE_KINDS
from segkit.viz import plot_comparison, save_figure, write_report

MODEL: dict[str, Any] = {"encoder": "resnet18", "encoder_weights": None, "decoder_channels": [64, 32, 16, 16, 16]}
FULL = {"size": 96, "pretrain": 512, "train": 256, "val": 48, "pre_epochs": 6, "epochs": 4, "batch": 16}
# --quick (the tests): a 0.3M-parameter encoder, so each checkpoint is ~4 MB, not resnet18's 136 MB.
QUICK_MODEL: dict[str, Any] = {**MODEL, "encoder": "tu-mobilenetv3_small_050", "decoder_channels": [16, 16, 8, 8, 8]}
QUICK = {"size": 32, "pretrain": 8, "train": 8, "val": 4, "pre_epochs": 1, "epochs": 2, "batch": 4}


def write_shapes_folder(root: Path, num_classes: int, counts: dict[str, int], size: int) -> Path:
    """Write shapes images as JPEG and their index masks as PNG in ``root/{split}/{images,masks}``."""
    for split, count in counts.items():
        data = build_dataset("shapes", split=split, num_images=count, image_size=size, num_classes=num_classes, seed=7)
        (root / split / "images").mkdir(parents=True, exist_ok=True)
        (root / split / "masks").mkdir(parents=True, exist_ok=True)
        for i in range(count):
            image, mask, _, _ = data.generate(i)
            Image.fromarray(image).save(root / split / "images" / f"{split}_{i:04d}.jpg", quality=95)
            Image.fromarray(mask).save(root / split / "masks" / f"{split}_{i:04d}.png")
    return root


def pretrain(out: Path, p: dict[str, int], device: str, arch: dict[str, Any]) -> Path:
    """Train U-Net on shapes with 4 classes; return its ``best.pt``."""
    train = build_dataset("shapes", split="train", num_images=p["pretrain"], image_size=p["size"], num_classes=4)
    val = build_dataset("shapes", split="val", num_images=p["val"], image_size=p["size"], num_classes=4)
    model = {"name": "unet", **arch}
    trainer = Trainer(model, "ce", train, val, epochs=p["pre_epochs"], batch_size=p["batch"], lr=3e-3,
                      out_dir=out / "pretrain", device=device, config={"model": model})  # fmt: skip
    trainer.fit()
    return out / "pretrain" / "best.pt"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Pretrain (or load), fine-tune on a folder with other classes, compare with scratch, predict, report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes and a few steps (for tests)")
    parser.add_argument("--out", default="runs/finetune_unet", help="output folder")
    parser.add_argument("--pretrained", default=None, help="a segkit checkpoint to start from (skips step 1)")
    parser.add_argument("--data", default=None, help="your folder (train/ and val/ subfolders); default: shapes")
    args = parser.parse_args(argv)
    out, p = Path(args.out), QUICK if args.quick else FULL
    device = "cpu" if args.quick else "auto"
    arch = QUICK_MODEL if args.quick else MODEL

    source = Path(args.pretrained) if args.pretrained else pretrain(out, p, device, arch)  # 1.
    root = (
        Path(args.data)
        if args.data
        else write_shapes_folder(  # 2.
            out / "data", 6, {"train": p["train"], "val": p["val"], "test": 2}, p["size"]
        )
    )
    # Shapes: the 6 classes named (a small sample may miss one); your folder: classes inferred from the masks.
    known = {} if args.data else {"num_classes": 6, "class_names": ["background", *SHAPE_KINDS]}
    crops = {"crop_size": p["size"], "scale": [0.75, 1.25]}
    data = {"name": "folder", "root": str(root), **known, "train": {"split": "train", "transforms": crops},
            "val": {"split": "val"}}  # fmt: skip
    steps = {"epochs": p["epochs"], "batch_size": p["batch"], "lr": 3e-3, "device": device, "warmup_iters": 0}

    # 3. fine-tune: the body from the checkpoint and a new head (model.weights), the encoder frozen for an
    # epoch, then trained at a tenth of the lr. The same config block works in a YAML file.
    tuned = Trainer.from_config(config_from_dict({
        "model": {"name": "unet", **arch, "weights": str(source)},
        "loss": "ce+dice",
        "data": data,
        "train": {**steps, "freeze": "encoder", "unfreeze_at": 1, "lr_mult": {"encoder": 0.1},
                  "out_dir": str(out / "finetune")},
    }))  # fmt: skip
    metrics = tuned.fit()

    # 4. the same steps from random weights.
    scratch = Trainer.from_config(config_from_dict({
        "model": {"name": "unet", **arch}, "loss": "ce+dice", "data": data,
        "train": {**steps, "out_dir": str(out / "scratch")},
    }))  # fmt: skip
    scratch_miou = scratch.fit()["val/miou"]
    print(f"val mIoU after {p['epochs']} epochs: fine-tuned {metrics['val/miou']:.4f}, from scratch {scratch_miou:.4f}")
    print(tuned.last_confusion.table())

    # 5. predict images the model never saw; training report.
    predictor = Predictor.from_checkpoint(out / "finetune" / "best.pt", device=tuned.device)
    figures = []
    for image_path in sorted((root / "test" / "images").iterdir())[:2] if (root / "test").is_dir() else []:
        image = np.asarray(Image.open(image_path).convert("RGB"))
        truth = np.asarray(Image.open(root / "test" / "masks" / f"{image_path.stem}.png"))
        mask = predictor.predict(image)
        fig = plot_comparison(image, truth, mask, predictor.palette, predictor.class_names)
        figures.append(save_figure(fig, out / f"comparison_{image_path.stem}.png"))
        print(f"{image_path.name}: {np.mean(mask == truth):.1%} of pixels right")
    report = write_report(out / "finetune", out / "report", num_worst=2 if args.quick else 6, device=str(tuned.device))
    print("wrote", *[str(p) for p in figures + report], sep="\n  ")
    return {
        "miou": metrics["val/miou"],
        "scratch_miou": scratch_miou,
        "figures": figures,
        "report": report,
        "checkpoint": out / "finetune" / "best.pt",
        "pretrained": source,
    }


if __name__ == "__main__":
    main()
