"""torch.profiler table of one U-Net resnet18 training step: segkit ``Trainer`` vs the plain loop (not in the suite).

Usage: python bench/profile_step.py [--size 96] [--batch 2] [--steps 3] [--rows 12]
Profiles the steps after the first (warm-up) of each loop and prints the operators by self CPU
time, so the share of convolutions, batch norm and the optimizer is visible next to the loop's own
overhead (anything that is not an aten operator shows up as the gap to the total).
"""

from __future__ import annotations

import argparse
import tempfile

import torch
from torch.profiler import ProfilerActivity, profile
from trainer import InMemory, make_model  # bench/trainer.py (the script's folder is on sys.path)

from segkit import Trainer
from segkit.engine.callbacks import Callback


class _Profile(Callback):
    """Starts the profiler after the first batch, stops it at the end of the epoch."""

    def __init__(self) -> None:
        self.prof = profile(activities=[ProfilerActivity.CPU])
        self.started = False

    def on_train_batch_end(self, trainer: Trainer, outputs: dict) -> None:
        if not self.started:
            self.prof.__enter__()
            self.started = True

    def on_epoch_end(self, trainer: Trainer, metrics: dict) -> None:
        self.prof.__exit__(None, None, None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--rows", type=int, default=12)
    args = parser.parse_args()
    data = InMemory(args.batch * args.steps, args.size, 4)
    device = torch.device("cpu")

    model = make_model(4, False, device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    batches = [
        (data.images[i : i + args.batch], data.masks[i : i + args.batch]) for i in range(0, len(data), args.batch)
    ]

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        loss = torch.nn.functional.cross_entropy(model(x), y, ignore_index=255)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step(*batches[0])
    with profile(activities=[ProfilerActivity.CPU]) as plain:
        for x, y in batches[1:]:
            step(x, y)
    print(f"== plain loop, {len(batches) - 1} steps, U-Net resnet18 {args.size}x{args.size} batch {args.batch}")
    print(plain.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))

    cb = _Profile()
    with tempfile.TemporaryDirectory() as tmp:
        Trainer(make_model(4, False, device), "ce", data, None, epochs=1, batch_size=args.batch, lr=1e-3,
                scheduler=None, device="cpu", log_every=10**9, callbacks=[cb], out_dir=tmp).fit()  # fmt: skip
    print(f"== segkit Trainer, {len(batches) - 1} steps (plus the epoch end: checkpoint writing)")
    print(cb.prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))


if __name__ == "__main__":
    main()
