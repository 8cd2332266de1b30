"""Trainer throughput against a plain hand-written loop on the same model, data and batch, and the FLOP floor.

Usage: python bench/trainer.py [--models unet deeplabv3plus] [--size 128] [--batch 4] [--steps 5] [--rounds 3]
                               [--device cpu|cuda]
Both models use a resnet18 encoder (random init).
Images/s = batch / median step time, so transient stalls of a busy machine do not decide the ratio.
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torch.utils.flop_counter import FlopCounterMode

from segkit import Trainer, build_model
from segkit.engine.callbacks import Callback


class InMemory(Dataset):
    """Random images and masks held in memory (no decoding cost in either loop)."""

    def __init__(self, n: int, size: int, num_classes: int) -> None:
        g = torch.Generator().manual_seed(0)
        self.images = torch.randn(n, 3, size, size, generator=g)
        self.masks = torch.randint(0, num_classes, (n, size, size), generator=g)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"image": self.images[i], "mask": self.masks[i]}


MODEL_NAME = {"unet": "U-Net resnet18", "deeplabv3plus": "DeepLabV3+ resnet18"}


def make_model(arch: str, num_classes: int, channels_last: bool, device: torch.device) -> nn.Module:
    torch.manual_seed(0)
    model = build_model(arch, encoder="resnet18", encoder_weights=None, num_classes=num_classes).to(device)
    return model.to(memory_format=torch.channels_last) if channels_last else model


def plain_loop(
    arch: str, data: Dataset, batch: int, amp: str | None, channels_last: bool, device: torch.device, nc: int
) -> tuple[float, float]:
    """Images/s of a textbook loop: ``batch`` over the median step time (the first step is warm-up)."""
    model = make_model(arch, nc, channels_last, device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    loader = DataLoader(data, batch_size=batch, shuffle=True)
    times = [_now()]
    for b in loader:
        x, y = b["image"].to(device), b["mask"].to(device)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp == "bf16"):
            out = model(x)
        loss = nn.functional.cross_entropy(out.float(), y, ignore_index=255)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(_now())
    return _rates(times, batch)


class _StepTimer(Callback):
    """Records the time at each batch end (the Trainer's own loop, everything included)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.times: list[tuple[float, float]] = []

    def on_epoch_start(self, trainer: Trainer) -> None:
        self.times = [_now()]

    def on_train_batch_end(self, trainer: Trainer, outputs: dict) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        self.times.append(_now())


def trainer_loop(
    arch: str, data: Dataset, batch: int, amp: str | None, channels_last: bool, device: torch.device, nc: int
) -> tuple[float, float]:
    """Images/s of the Trainer: ``batch`` over the median step time (the first step is warm-up)."""
    timer = _StepTimer(device)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(make_model(arch, nc, channels_last, device), "ce", data, None, epochs=1, batch_size=batch, lr=1e-3,
                          weight_decay=1e-4, scheduler=None, amp=amp, channels_last=channels_last, device=device,
                          log_every=10**9, callbacks=[timer], out_dir=tmp)  # fmt: skip
        trainer.fit()
    return _rates(timer.times, batch)


def _now() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _rates(times: list[tuple[float, float]], batch: int) -> tuple[float, float]:
    """(images per wall second, images per CPU second of this process), from median step times.

    The first step is warm-up and dropped. CPU time is what this process itself spent, so it is
    comparable between runs even when other jobs share the machine."""
    walls = [b[0] - a[0] for a, b in zip(times[1:], times[2:])]
    cpus = [b[1] - a[1] for a, b in zip(times[1:], times[2:])]
    return batch / statistics.median(walls), batch / statistics.median(cpus)


def flop_floor(arch: str, batch: int, size: int, device: torch.device, nc: int) -> tuple[float, float]:
    """(fwd+bwd FLOPs per image, measured fp32 GEMM FLOP/s of this machine)."""
    model = make_model(arch, nc, False, device)
    x = torch.randn(batch, 3, size, size, device=device)
    with FlopCounterMode(display=False) as counter:
        model(x).sum().backward()
    per_image = counter.get_total_flops() / batch
    n = 2048 if device.type == "cuda" else 1024
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    a @ b
    reps = 50 if device.type == "cuda" else 5
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    if device.type == "cuda":
        torch.cuda.synchronize()
    return per_image, 2 * n**3 * reps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", nargs="+", default=list(MODEL_NAME), choices=list(MODEL_NAME))
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=5, help="steps per run (the first is warm-up)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs per loop; the median is kept")
    args = parser.parse_args()
    device, nc = torch.device(args.device), 4
    data = InMemory(args.batch * args.steps, args.size, nc)
    for arch in args.models:
        bench_model(arch, args, data, device, nc)


def bench_model(arch: str, args: argparse.Namespace, data: Dataset, device: torch.device, nc: int) -> None:
    """Print the table of one model: fp32, bf16 autocast, channels_last; plain vs Trainer."""
    per_image, gemm = flop_floor(arch, args.batch, args.size, device, nc)
    floor = gemm / per_image
    print(
        f"\n{MODEL_NAME[arch]}, {args.size}x{args.size}, batch {args.batch}, median of {args.steps - 1} steps, median of {args.rounds} alternating rounds, {device}, "
        f"{torch.get_num_threads()} threads"
    )
    print(
        f"fwd+bwd {per_image / 1e9:.2f} GFLOP/image; fp32 GEMM {gemm / 1e9:.1f} GFLOP/s; FLOP floor {floor:.2f} img/s"
    )
    print(
        "| mode | plain img/s | Trainer img/s | Trainer / plain (wall) | Trainer / plain (CPU time) | Trainer / FLOP floor |"
    )
    print("|---|---|---|---|---|---|")
    for name, amp, cl in (("fp32", None, False), ("bf16 autocast", "bf16", False), ("fp32 channels_last", None, True)):
        # Alternate the two loops for a few rounds and keep each one's median, so both see the same
        # mix of load from other jobs on a shared machine.
        runs: dict[str, list[tuple[float, float]]] = {"plain": [], "trainer": []}
        for _ in range(args.rounds):
            runs["plain"].append(plain_loop(arch, data, args.batch, amp, cl, device, nc))
            runs["trainer"].append(trainer_loop(arch, data, args.batch, amp, cl, device, nc))
        plain, plain_cpu = (statistics.median(r[i] for r in runs["plain"]) for i in (0, 1))
        ours, ours_cpu = (statistics.median(r[i] for r in runs["trainer"]) for i in (0, 1))
        print(
            f"| {name} | {plain:.2f} | {ours:.2f} | {ours / plain:.3f} | {ours_cpu / plain_cpu:.3f} | {ours / floor:.3f} |",
            flush=True,
        )
    assert math.isfinite(floor)


if __name__ == "__main__":
    main()
