"""Trainer throughput against a plain hand-written loop in each precision, layout and compile mode, and the limit.

Usage: python bench/trainer.py [--models unet deeplabv3plus] [--size 256] [--batch 4] [--steps 5] [--rounds 3]
                               [--modes fp32 bf16-cl-compiled ... | eager | compiled | all] [--device cpu|cuda]
Both models use a resnet18 encoder (random init), AdamW (fused in both loops: the ratio is the Trainer's own cost).

Images/s = batch / median step time; the first step of every round is dropped (it holds the compile, or the loader's
start). The two loops alternate: the plain loop's round r runs at the end of the Trainer's epoch r (a callback), so
both see the same load from other jobs, and each compiles once (compile time printed separately, not in img/s).

The limit: this machine's matmul rate (2048x2048, fp32 and bf16, measured by this command before and after the
modes; the higher is kept) over the step's FLOPs (fwd+bwd, ``FlopCounterMode``) is the floor img/s of each
precision; the last columns are the Trainer's share of it (1.0 = every FLOP at the matmul rate), from wall time
and from this process's CPU time (on a shared machine the CPU-time share is the one that does not depend on how
much of a core the other jobs left: both the steps and the matmuls are then timed by the CPU they got).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torch.utils.flop_counter import FlopCounterMode

from segkit import Trainer, build_model
from segkit.engine.callbacks import Callback, ModelCheckpoint

MODEL_NAME = {"unet": "U-Net resnet18", "deeplabv3plus": "DeepLabV3+ resnet18"}
# name: (amp, channels_last, compiled)
MODES: dict[str, tuple[str | None, bool, bool]] = {
    f"{amp or 'fp32'}{'-cl' if cl else ''}{'-compiled' if compiled else ''}": (amp, cl, compiled)
    for compiled in (False, True)
    for amp in (None, "bf16")
    for cl in (False, True)
}
GROUPS = {
    "all": list(MODES),
    "eager": [m for m in MODES if not MODES[m][2]],
    "compiled": [m for m in MODES if MODES[m][2]],
}


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


def make_model(arch: str, num_classes: int, channels_last: bool, device: torch.device) -> nn.Module:
    torch.manual_seed(0)
    model = build_model(arch, encoder="resnet18", encoder_weights=None, num_classes=num_classes).to(device)
    return model.to(memory_format=torch.channels_last) if channels_last else model


class PlainLoop:
    """A textbook loop (DataLoader, forward under autocast, CE, backward, fused AdamW step) run round by round."""

    def __init__(self, arch: str, data: Dataset, batch: int, mode: str, device: torch.device, nc: int) -> None:
        self.amp, self.channels_last, compiled = MODES[mode]
        self.device = device
        self.model = make_model(arch, nc, self.channels_last, device)
        self.step_model = torch.compile(self.model) if compiled else self.model
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=1e-3, weight_decay=1e-4, fused=True)
        self.loader = DataLoader(data, batch_size=batch, shuffle=True)
        self.batch = batch
        start = time.perf_counter()
        self.step(next(iter(self.loader)))  # warm-up, and the compile when compiling
        self.compile_seconds = time.perf_counter() - start if compiled else None

    def step(self, b: dict[str, torch.Tensor]) -> torch.Tensor:
        x, y = b["image"].to(self.device), b["mask"].to(self.device)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp == "bf16"):
            out = self.step_model(x)
        loss = nn.functional.cross_entropy(out.float(), y, ignore_index=255)
        loss.backward()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        return loss

    def round(self) -> tuple[float, float]:
        """(img/s wall, img/s CPU) of one pass over the data, first step dropped."""
        times = [_now()]
        for b in self.loader:
            self.step(b)
            _sync(self.device)
            times.append(_now())
        return _rates(times, self.batch)


class _Rounds(Callback):
    """Times the Trainer's batches; at each epoch end runs one round of the plain loop (alternation)."""

    def __init__(self, plain: PlainLoop, batch: int) -> None:
        self.plain, self.batch = plain, batch
        self.times: list[tuple[float, float]] = []
        self.trainer_rates: list[tuple[float, float]] = []
        self.plain_rates: list[tuple[float, float]] = []

    def on_epoch_start(self, trainer: Trainer) -> None:
        self.times = [_now()]

    def on_train_batch_end(self, trainer: Trainer, outputs: dict) -> None:
        _sync(self.plain.device)
        self.times.append(_now())

    def on_epoch_end(self, trainer: Trainer, metrics: dict) -> None:
        self.trainer_rates.append(_rates(self.times, self.batch))
        self.plain_rates.append(self.plain.round())


def bench_mode(
    arch: str, data: Dataset, batch: int, rounds: int, mode: str, device: torch.device, nc: int
) -> dict[str, float | None]:
    """Medians over ``rounds`` alternating rounds of the plain loop and the Trainer in ``mode``."""
    amp, channels_last, compiled = MODES[mode]
    torch._dynamo.reset()  # each mode compiles from scratch (and stays under dynamo's recompile limit)
    plain = PlainLoop(arch, data, batch, mode, device, nc)
    timer = _Rounds(plain, batch)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(make_model(arch, nc, channels_last, device), "ce", data, None, epochs=rounds, batch_size=batch,
                          lr=1e-3, weight_decay=1e-4, scheduler=None, amp=amp, compile=compiled,
                          channels_last=channels_last, device=device, log_every=10**9, callbacks=[timer],
                          out_dir=tmp)  # fmt: skip
        # No checkpoint writing between rounds: it is not timed, and the write-back of its ~170 MB (weights and
        # AdamW state) would run during the Trainer's next steps only, never the plain loop's.
        trainer.callbacks = [c for c in trainer.callbacks if not isinstance(c, ModelCheckpoint)]
        trainer.fit()
    print(f"  {arch} {mode} done", file=sys.stderr, flush=True)
    out: dict[str, float | None] = {"plain_compile": plain.compile_seconds, "trainer_compile": trainer.compile_seconds}
    for key, rates in (("plain", timer.plain_rates), ("trainer", timer.trainer_rates)):
        out[key], out[f"{key}_cpu"] = (statistics.median(r[i] for r in rates) for i in (0, 1))
    return out


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _now() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _rates(times: list[tuple[float, float]], batch: int) -> tuple[float, float]:
    """(images per wall second, images per CPU second of this process), from median step times.

    The first step is warm-up and dropped. CPU time is what this process itself spent, so it is
    comparable between runs even when other jobs share the machine."""
    walls = [b[0] - a[0] for a, b in zip(times[1:], times[2:])]
    cpus = [b[1] - a[1] for a, b in zip(times[1:], times[2:])]
    return batch / statistics.median(walls), batch / statistics.median(cpus)


def step_flops(arch: str, batch: int, size: int, device: torch.device, nc: int) -> float:
    """Forward + backward FLOPs per image (convolutions and matmuls, as ``FlopCounterMode`` counts them)."""
    model = make_model(arch, nc, False, device)
    x = torch.randn(batch, 3, size, size, device=device)
    with FlopCounterMode(display=False) as counter:
        model(x).sum().backward()
    return counter.get_total_flops() / batch


def matmul_rate(dtype: torch.dtype, device: torch.device, n: int = 2048, reps: int = 5) -> tuple[float, float]:
    """FLOP/s of an ``n x n`` matmul in ``dtype`` on this machine, per wall second and per CPU second of this
    process (medians of ``reps`` after a warm-up; on a shared CPU the second is what the step gets when it runs)."""
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    a @ b
    times = [_now()]
    for _ in range(reps):
        a @ b
        _sync(device)
        times.append(_now())
    wall, cpu = (statistics.median(t[i] - s[i] for s, t in zip(times, times[1:])) for i in (0, 1))
    return 2 * n**3 / wall, 2 * n**3 / cpu


def cpu_line() -> str:
    """The CPU model and the flags that decide the matmul rates (``lscpu``'s, from /proc/cpuinfo)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return "CPU: unknown"
    model = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), "unknown")
    flags = set(next((ln.split(":", 1)[1] for ln in lines if ln.startswith("flags")), "").split())
    wanted = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")
    return f"CPU: {model}; flags: {' '.join(f for f in wanted if f in flags) or 'none of'} (of {' '.join(wanted)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["unet"], choices=list(MODEL_NAME))
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=4, help="steps per round (the first is dropped)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per loop; the median is kept")
    parser.add_argument("--modes", nargs="+", default=["all"], choices=[*GROUPS, *MODES], help="modes or groups")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    modes = [m for m in MODES if any(m == s or m in GROUPS.get(s, ()) for s in args.modes)]
    device, nc = torch.device(args.device), 4
    data = InMemory(args.batch * args.steps, args.size, nc)
    print(f"{cpu_line()}\ntorch {torch.__version__}, {torch.get_num_threads()} threads, {device}; "
          f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())} (start)")  # fmt: skip
    rates = {p: [matmul_rate(dtype, device)] for p, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16))}
    results = {arch: {mode: bench_mode(arch, data, args.batch, args.rounds, mode, device, nc) for mode in modes}
               for arch in args.models}  # fmt: skip
    for p, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        rates[p].append(matmul_rate(dtype, device))
    print("2048x2048 matmul GFLOP/s per wall s (start, end) / per CPU s (start, end): " + "; ".join(
        f"{p} {r[0][0] / 1e9:.1f}, {r[1][0] / 1e9:.1f} / {r[0][1] / 1e9:.1f}, {r[1][1] / 1e9:.1f}"
        for p, r in rates.items()) + f"; load average {' '.join(f'{x:.1f}' for x in os.getloadavg())} (end)")  # fmt: skip
    for arch in args.models:
        per_image = step_flops(arch, args.batch, args.size, device, nc)
        # The floor of each precision: the best matmul rate seen (start or end), per wall and per CPU second.
        floor = {p: [max(x[i] for x in r) / per_image for i in (0, 1)] for p, r in rates.items()}
        print(f"\n{MODEL_NAME[arch]}, {args.size}x{args.size}, batch {args.batch}, {args.rounds} alternating rounds "
              f"of {args.steps - 1} timed steps (medians); fwd+bwd {per_image / 1e9:.2f} GFLOP/image; floor img/s "
              f"(wall / CPU time): fp32 {floor['fp32'][0]:.2f} / {floor['fp32'][1]:.2f}, "
              f"bf16 {floor['bf16'][0]:.2f} / {floor['bf16'][1]:.2f}")  # fmt: skip
        print("| mode | compile s (plain / Trainer) | plain img/s | Trainer img/s | Trainer / plain (wall) "
              "| Trainer / plain (CPU time) | Trainer img per CPU s | Trainer / floor (wall) "
              "| Trainer / floor (CPU time) |")  # fmt: skip
        print("|---|---|---|---|---|---|---|---|---|")
        for mode, r in results[arch].items():
            comp = "-" if r["plain_compile"] is None else f"{r['plain_compile']:.0f} / {r['trainer_compile'] or 0:.0f}"
            plain, ours, plain_cpu, ours_cpu = (
                float(r[k] or 0) for k in ("plain", "trainer", "plain_cpu", "trainer_cpu")
            )
            wall_floor, cpu_floor = floor["bf16" if MODES[mode][0] else "fp32"]
            print(f"| {mode} | {comp} | {plain:.2f} | {ours:.2f} | {ours / plain:.3f} | {ours_cpu / plain_cpu:.3f} | "
                  f"{ours_cpu:.2f} | {ours / wall_floor:.3f} | {ours_cpu / cpu_floor:.3f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
