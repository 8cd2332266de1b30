"""The same parts as the Trainer, in your own loop: dataset, model and loss by name, metrics, checkpoint, predictor.

Runs offline on the built-in synthetic ``shapes`` data::

    python examples/plain_loop.py            # about a minute on a laptop CPU
    python examples/plain_loop.py --quick    # tiny sizes, a few steps (used by the tests)

Write your own loop when the Trainer's seams are not enough: several optimizers (GANs), custom
sampling per step, alternating tasks. Everything else stays the same: ``build_dataset``,
``build_model``, ``build_loss``, ``collate_semantic``, ``ConfusionMatrix`` and ``save_checkpoint``
(whose file ``Predictor.from_checkpoint`` and ``segkit predict`` read, given the model config inside).

For real data use ``build_dataset("voc" | "camvid" | "folder", root=..., split=...)``; for pretrained
weights pass ``encoder_weights="imagenet"`` to ``build_model``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader

from segkit import Predictor, build_dataset, build_loss, build_model
from segkit.checkpoint import save_checkpoint
from segkit.datasets import collate_semantic
from segkit.metrics import ConfusionMatrix
from segkit.viz import overlay_mask


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Train and validate with a hand-written loop; save a checkpoint and predict one image with it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes and a few steps (for tests)")
    parser.add_argument("--out", default="runs/plain_loop", help="output folder")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    device = torch.device("cpu" if args.quick or not torch.cuda.is_available() else "cuda")
    size, n_train, n_val, epochs = (32, 8, 4, 1) if args.quick else (64, 256, 64, 5)

    train = build_dataset("shapes", split="train", num_images=n_train, image_size=size)
    val = build_dataset("shapes", split="val", num_images=n_val, image_size=size)
    model_cfg = {
        "name": "unet",
        # --quick (the tests): a 0.3M-parameter encoder, so the checkpoint is ~4 MB, not resnet18's 136 MB.
        "encoder": "tu-mobilenetv3_small_050" if args.quick else "resnet18",
        "num_classes": train.num_classes,
        "decoder_channels": [16, 16, 8, 8, 8] if args.quick else [64, 32, 16, 16, 16],
    }
    model = build_model(**model_cfg).to(device)
    loss_fn = build_loss("ce")
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    train_loader = DataLoader(train, batch_size=4 if args.quick else 16, shuffle=True, collate_fn=collate_semantic)
    val_loader = DataLoader(val, batch_size=16, collate_fn=collate_semantic)

    for epoch in range(epochs):
        model.train()
        total = torch.zeros((), device=device)
        for batch in train_loader:
            images, masks = batch["image"].to(device), batch["mask"].to(device)
            loss = loss_fn(model(images), masks)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach()  # summed on the device: one sync per epoch, not per step
        model.eval()
        cm = ConfusionMatrix(train.num_classes, device=device, class_names=train.class_names)
        with torch.no_grad():
            for batch in val_loader:
                cm.update(model(batch["image"].to(device)).argmax(1), batch["mask"].to(device))
        metrics = cm.compute()
        print(
            f"epoch {epoch + 1}/{epochs}  loss {float(total) / len(train_loader):.4f}  val mIoU {metrics['miou']:.4f}"
        )

    # The Trainer's checkpoint layout: the model config inside makes it loadable by name.
    ckpt = save_checkpoint(
        {
            "model": model.state_dict(),
            "config": {"model": model_cfg},
            "num_classes": train.num_classes,
            "class_names": list(train.class_names),
            "palette": np.asarray(train.palette).tolist(),
        },
        out / "model.pt",
    )
    predictor = Predictor.from_checkpoint(ckpt, device=device)
    image, _, _, _ = build_dataset("shapes", split="test", num_images=1, image_size=size).generate(0)
    mask = predictor.predict(image)
    overlay = out / "prediction.png"
    Image.fromarray(overlay_mask(image, mask, predictor.palette)).save(overlay)
    print(cm.table())
    print(f"checkpoint {ckpt}, overlay {overlay}")
    return {"miou": metrics["miou"], "checkpoint": ckpt, "overlay": overlay}


if __name__ == "__main__":
    main()
