"""Val mIoU on shapes after a fixed wall-clock budget: segkit ``Trainer`` vs a plain hand-written loop.

Usage: python bench/accuracy.py [--budget 60] [--size 64] [--train 128] [--val 32] [--rounds 1] [--quick]
Same model (U-Net resnet18, random init, same seed), same pre-generated samples, batch, AdamW and lr,
no scheduler; both validate after every epoch (counted in the budget, as a user would see it) and
stop at the first epoch end past the budget. The mIoU of both is computed by segkit's
``ConfusionMatrix`` on the same val set (bench/metrics.py checks it against torchmetrics).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from segkit import Trainer, build_dataset, build_model
from segkit.datasets import collate_semantic
from segkit.engine.callbacks import Callback
from segkit.metrics import ConfusionMatrix


class Samples(Dataset):
    """Pre-generated samples, so neither loop pays for drawing the shapes."""

    def __init__(self, split: str, n: int, size: int) -> None:
        ds = build_dataset("shapes", split=split, num_images=n, image_size=size)
        self.samples = [ds[i] for i in range(n)]
        self.num_classes, self.class_names = ds.num_classes, ds.class_names

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.samples[i]


def make_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("unet", encoder="resnet18", encoder_weights=None, num_classes=4,
                       decoder_channels=[64, 32, 16, 16, 16])  # fmt: skip


def plain_loop(train: Dataset, val: Dataset, args: argparse.Namespace) -> tuple[float, int]:
    """(final val mIoU, epochs) of a textbook loop that validates after each epoch until the budget is spent."""
    model = make_model()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    torch.manual_seed(0)
    loader = DataLoader(train, batch_size=args.batch, shuffle=True, collate_fn=collate_semantic)
    start, epochs, miou = time.perf_counter(), 0, float("nan")
    while time.perf_counter() - start < args.budget:
        model.train()
        for b in loader:
            loss = torch.nn.functional.cross_entropy(model(b["image"]), b["mask"], ignore_index=255)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        model.eval()
        cm = ConfusionMatrix(4)
        with torch.no_grad():
            for b in DataLoader(val, batch_size=args.batch, collate_fn=collate_semantic):
                cm.update(model(b["image"]).argmax(1), b["mask"])
        miou, epochs = cm.compute()["miou"], epochs + 1
    return miou, epochs


class _Budget(Callback):
    """Stops training at the first epoch end past the budget."""

    def __init__(self, budget: float) -> None:
        self.budget, self.start, self.epochs = budget, 0.0, 0

    def on_fit_start(self, trainer: Trainer) -> None:
        self.start = time.perf_counter()

    def on_epoch_end(self, trainer: Trainer, metrics: dict) -> None:
        self.epochs += 1
        if time.perf_counter() - self.start >= self.budget:
            trainer.should_stop = True


def trainer_loop(train: Dataset, val: Dataset, args: argparse.Namespace) -> tuple[float, int]:
    """(final val mIoU, epochs) of the Trainer (checkpointing and logging included) under the same budget."""
    budget = _Budget(args.budget)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(make_model(), "ce", train, val, epochs=10**6, batch_size=args.batch, lr=args.lr,
                          weight_decay=1e-4, scheduler=None, device="cpu", callbacks=[budget], out_dir=tmp)  # fmt: skip
        metrics = trainer.fit()
    return float(metrics["val/miou"]), budget.epochs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=60.0, help="wall-clock seconds per run")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--train", type=int, default=128, help="training images")
    parser.add_argument("--val", type=int, default=32, help="validation images")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--rounds", type=int, default=1, help="alternating rounds; medians kept")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: see RESULTS.md, ddp)")
    parser.add_argument("--quick", action="store_true", help="10 s budget, 32 px, 32/8 images")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.quick:
        args.budget, args.size, args.train, args.val = 10.0, 32, 32, 8
    train, val = Samples("train", args.train, args.size), Samples("val", args.val, args.size)
    runs: dict[str, list[tuple[float, int]]] = {"plain": [], "trainer": []}
    for _ in range(args.rounds):
        runs["plain"].append(plain_loop(train, val, args))
        runs["trainer"].append(trainer_loop(train, val, args))
    print(
        f"U-Net resnet18 (random init), shapes {args.size}x{args.size}, {args.train} train / {args.val} val images, "
        f"batch {args.batch}, AdamW lr {args.lr}, budget {args.budget:.0f} s per run, {args.rounds} alternating "
        f"round(s), cpu, {torch.get_num_threads()} threads"
    )
    print("| loop | val mIoU (median) | epochs in budget | vs plain (mIoU) |")
    print("|---|---|---|---|")
    plain = statistics.median(m for m, _ in runs["plain"])
    for name, key in (("plain loop", "plain"), ("segkit Trainer", "trainer")):
        miou = statistics.median(m for m, _ in runs[key])
        epochs = " ".join(str(e) for _, e in runs[key])
        print(f"| {name} | {miou:.4f} | {epochs} | {miou / plain:.3f}x |")


if __name__ == "__main__":
    main()
