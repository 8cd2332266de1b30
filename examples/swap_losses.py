"""Train the same model with several losses chosen by name and print a table of validation mIoU.

Runs offline on the built-in synthetic ``shapes`` data::

    python examples/swap_losses.py             # a few minutes on a laptop CPU
    python examples/swap_losses.py --quick     # tiny sizes, one epoch per loss (used by the tests)

Every loss is looked up by name in the registry (``segkit list losses``); ``"ce+dice"`` sums two
terms with equal weights and ``{"ce": 1.0, "dice": 0.5}`` weights them. Only the names registered in
your installation are run, so the script works whichever losses are available.

For real data, replace ``make_data`` with ``build_dataset("voc", root=..., split=...)`` (or ``folder``,
``camvid``) and set ``encoder_weights="imagenet"`` in ``MODEL`` to start from pretrained weights.
The ranking on one short run is noisy: compare losses with several seeds before trusting a gap.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from segkit import LOSSES, Trainer
from segkit.datasets import build_dataset

CANDIDATES = ["ce", "dice", "focal", "lovasz", "ce+dice"]
MODEL: dict[str, Any] = {
    "name": "unet",
    "encoder": "resnet18",
    "encoder_weights": None,
    "decoder_channels": [64, 32, 16, 16, 16],
}


def available_losses(candidates: list[str] = CANDIDATES) -> list[str]:
    """The candidate names whose every ``+`` term is registered."""
    return [name for name in candidates if all(part.strip() in LOSSES for part in name.split("+"))]


def make_data(quick: bool) -> tuple[Any, Any]:
    """Train and validation splits of the shapes data."""
    size, n_train, n_val = (32, 8, 4) if quick else (64, 256, 64)
    train = build_dataset("shapes", split="train", num_images=n_train, image_size=size)
    val = build_dataset("shapes", split="val", num_images=n_val, image_size=size)
    return train, val


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Train once per available loss; print and return ``{"results": {loss: val mIoU}, "table": str}``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes and one epoch per loss (for tests)")
    parser.add_argument("--out", default="runs/swap_losses", help="output folder (one run folder per loss)")
    parser.add_argument(
        "--losses", nargs="*", default=None, help=f"loss names (default: those of {CANDIDATES} registered)"
    )
    args = parser.parse_args(argv)
    losses = args.losses or available_losses()
    train, val = make_data(args.quick)
    # --quick (the tests): a 0.3M-parameter encoder, so each checkpoint is ~4 MB, not resnet18's 136 MB.
    quick = {"encoder": "tu-mobilenetv3_small_050", "decoder_channels": [16, 16, 8, 8, 8]}
    model = dict(MODEL, **quick) if args.quick else MODEL
    results: dict[str, float] = {}
    for name in losses:
        # The same seed for every run: identical initial weights and batch order, only the loss differs.
        trainer = Trainer(
            model,
            loss=name,
            train_data=train,
            val_data=val,
            epochs=1 if args.quick else 6,
            batch_size=8 if args.quick else 16,
            lr=3e-3,
            seed=0,
            device="cpu" if args.quick else "auto",
            out_dir=Path(args.out) / name.replace("+", "_plus_"),
        )
        metrics = trainer.fit()
        results[name] = float(metrics["val/miou"])
    width = max(len("loss"), *(len(n) for n in results))
    lines = [f"{'loss':<{width}}  val mIoU", f"{'-' * width}  --------"]
    lines += [f"{name:<{width}}  {miou:8.4f}" for name, miou in sorted(results.items(), key=lambda kv: -kv[1])]
    table = "\n".join(lines)
    print(table)
    return {"results": results, "table": table}


if __name__ == "__main__":
    main()
