"""Data-parallel throughput on the CPU: 1 vs 2 processes under torchrun (1 thread each) vs 1 process with 2 threads.

Usage: python bench/ddp.py [--size 64] [--batch 4] [--steps 8] [--rounds 2] [--quick]
Each configuration trains the segkit ``Trainer`` (U-Net resnet18, in-memory data, gloo DDP when 2
processes) in a fresh process; ``--batch`` is per process, so 2 processes see twice the images per step.
Images/s (all processes together) = images per step / median step time of rank 0 (first step dropped);
configurations alternate for ``--rounds`` rounds and the median is kept.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import torch
from torch.utils.data import Dataset

CONFIGS = (
    ("1 process x 2 threads", 1, 2),
    ("torchrun 1 process x 1 thread", 1, 1),
    ("torchrun 2 processes x 1 thread", 2, 1),
)


class InMemory(Dataset):
    """Random images and masks held in memory (the same on every rank)."""

    num_classes = 4

    def __init__(self, n: int, size: int) -> None:
        g = torch.Generator().manual_seed(0)
        self.images = torch.randn(n, 3, size, size, generator=g)
        self.masks = torch.randint(0, self.num_classes, (n, size, size), generator=g)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"image": self.images[i], "mask": self.masks[i]}


def worker(args: argparse.Namespace) -> None:
    """Train one epoch with the Trainer and print rank 0's images/s as a JSON line."""
    from segkit import Trainer, build_model
    from segkit.engine.callbacks import Callback

    torch.set_num_threads(args.threads)
    world = int(os.environ.get("WORLD_SIZE", "1"))

    class StepTimer(Callback):
        times: list[float] = []

        def on_epoch_start(self, trainer: Trainer) -> None:
            self.times = [time.perf_counter()]

        def on_train_batch_end(self, trainer: Trainer, outputs: dict) -> None:
            self.times.append(time.perf_counter())

    timer = StepTimer()
    data = InMemory(args.batch * args.steps * world, args.size)
    torch.manual_seed(0)
    model = build_model("unet", encoder="resnet18", encoder_weights=None, num_classes=4)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(model, "ce", data, None, epochs=1, batch_size=args.batch, scheduler=None, device="cpu",
                          log_every=10**9, callbacks=[timer], out_dir=tmp)  # fmt: skip
        trainer.fit()
    steps = [b - a for a, b in zip(timer.times[1:], timer.times[2:])]
    if trainer.is_main_process:
        print(json.dumps({"images_per_s": args.batch * world / statistics.median(steps)}), flush=True)
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def launch(args: argparse.Namespace, procs: int, threads: int, torchrun: bool) -> float:
    """Run one configuration in fresh processes and return its images/s."""
    opts = ["--worker", "--threads", str(threads), "--size", str(args.size), "--batch", str(args.batch),
            "--steps", str(args.steps)]  # fmt: skip
    if torchrun:
        runner = shutil.which("torchrun", path=os.path.dirname(sys.executable)) or "torchrun"
        cmd = [runner, "--standalone", f"--nproc_per_node={procs}", __file__, *opts]
    else:
        cmd = [sys.executable, __file__, *opts]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
    if res.returncode != 0 or not lines:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}")
    return float(json.loads(lines[-1])["images_per_s"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=4, help="images per process and step")
    parser.add_argument("--steps", type=int, default=8, help="steps per run (the first is warm-up)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds; medians kept")
    parser.add_argument("--quick", action="store_true", help="32 px, batch 2, 3 steps, 1 round")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.size, args.batch, args.steps, args.rounds = 32, 2, 3, 1
    if args.worker:
        worker(args)
        return
    runs: dict[str, list[float]] = {name: [] for name, _, _ in CONFIGS}
    for _ in range(args.rounds):
        for name, procs, threads in CONFIGS:
            runs[name].append(launch(args, procs, threads, torchrun=name.startswith("torchrun")))
    base = statistics.median(runs[CONFIGS[0][0]])
    print(
        f"U-Net resnet18 (random init), {args.size}x{args.size}, batch {args.batch} per process, Trainer, cpu (gloo), "
        f"median of {args.steps - 1} steps, median of {args.rounds} alternating rounds"
    )
    print("| configuration | images/s (all processes) | all rounds | vs 1 process x 2 threads |")
    print("|---|---|---|---|")
    for name, _, _ in CONFIGS:
        value = statistics.median(runs[name])
        print(f"| {name} | {value:.2f} | {' '.join(f'{r:.2f}' for r in runs[name])} | {value / base:.3f}x |")


if __name__ == "__main__":
    main()
