"""Trainer throughput against a plain hand-written loop in each precision, layout and compile mode, and the limit.

Usage: python bench/trainer.py [--models unet deeplabv3plus] [--size 256] [--batch 4] [--steps 5] [--rounds 3] [--control]
                               [--modes fp32 bf16-cl-compiled ... | eager | compiled | all] [--device cpu|cuda]
Both models use a resnet18 encoder (random init), AdamW (fused in both loops: the ratio is the Trainer's own cost).

Images/s = batch / median step time. The two loops alternate step by step: after each Trainer step a callback
runs one plain-loop step, so the two see the same load from other jobs to within a step, and the ratios are read
from many pairs (``rounds`` epochs of ``steps`` pairs; the first pair of each epoch is dropped: it holds the compile,
the loader's start and the epoch's bookkeeping). A Trainer step is timed from the end of the previous plain step to
the Trainer's ``on_train_batch_end``: its loader, batch moving, forward, loss, checks, backward, optimizer step and
bookkeeping all count. Trainer / plain is given three ways: the ratio of the median step times (wall, and CPU
time of this process), and the median of the per-pair CPU-time ratios with a 95% bootstrap interval (a pair's two
steps ran back to back). ``--control`` runs a second, identical plain loop in each pair: its ratio to the first is
what the same measurement says about two identical loops (the noise floor of the Trainer / plain ratio).

The system CPU time and minor page faults of each loop's steps are printed too: with glibc's default malloc the
freed activations go back to the OS and every step faults 30-80 k pages in again (~1.5 us each, 10-15% of a
256 px step here), and which loop gets more of them varies from run to run, moving Trainer / plain by a few %
under load. ``GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=68719476736``
(set before Python starts) keeps that memory in the process: no faults, both loops ~10% faster.

The limit: this machine's matmul rate (2048x2048, fp32 and bf16, measured by this command before and after the
modes; the higher is kept) over the step's FLOPs (fwd+bwd, ``FlopCounterMode``) is the floor img/s of each
precision; the last columns are the Trainer's share of it (1.0 = every FLOP at the matmul rate), from wall time
and from this process's CPU time (on a shared machine the CPU-time share is the one that does not depend on how
much of a core the other jobs left: both the steps and the matmuls are then timed by the CPU they got).
"""

from __future__ import annotations

import argparse
import os
import random
import resource
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
    """A textbook loop (DataLoader, forward under autocast, CE, backward, fused AdamW step) run step by step."""

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

    def timed_step(self) -> tuple[float, ...]:
        """(wall s, CPU s, system CPU s, minor page faults) of one step, the loader's next batch included (a new
        pass starts when one ends)."""
        start = _now()
        try:
            b = next(self._batches)
        except (AttributeError, StopIteration):
            self._batches = iter(self.loader)
            b = next(self._batches)
        self.step(b)
        _sync(self.device)
        return _since(start)


class _Pairs(Callback):
    """After each Trainer step, one plain step (and one of the control loop): times of every pair of steps."""

    def __init__(self, plain: PlainLoop, control: PlainLoop | None) -> None:
        self.plain, self.control = plain, control
        self.pairs: list[dict[str, tuple[float, ...]]] = []  # {"trainer": (wall, cpu, ...), "plain": ...}
        self.last = _now()
        self.first = True

    def on_epoch_start(self, trainer: Trainer) -> None:
        self.first = True  # the epoch's first step holds the loader's start (and the compile): not kept

    def on_train_batch_end(self, trainer: Trainer, outputs: dict) -> None:
        _sync(self.plain.device)
        pair = {"trainer": _since(self.last), "plain": self.plain.timed_step()}
        if self.control is not None:
            pair["control"] = self.control.timed_step()
        if not self.first:
            self.pairs.append(pair)
        self.first = False
        self.last = _now()


def bench_mode(
    arch: str, data: Dataset, batch: int, rounds: int, mode: str, device: torch.device, nc: int, control: bool = False
) -> dict[str, float | None]:
    """Step-by-step alternation of the Trainer and the plain loop in ``mode`` over ``rounds`` epochs (see the
    module docstring); img/s from median step times, Trainer / plain three ways, and the control's ratio."""
    amp, channels_last, compiled = MODES[mode]
    torch._dynamo.reset()  # each mode compiles from scratch (and stays under dynamo's recompile limit)
    plain = PlainLoop(arch, data, batch, mode, device, nc)
    timer = _Pairs(plain, PlainLoop(arch, data, batch, mode, device, nc) if control else None)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(make_model(arch, nc, channels_last, device), "ce", data, None, epochs=rounds, batch_size=batch,
                          lr=1e-3, weight_decay=1e-4, scheduler=None, amp=amp, compile=compiled,
                          channels_last=channels_last, device=device, log_every=10**9, callbacks=[timer],
                          out_dir=tmp)  # fmt: skip
        # No checkpoint writing between epochs: it is not timed, and the write-back of its ~170 MB (weights and
        # AdamW state) would run during the Trainer's next steps only, never the plain loop's.
        trainer.callbacks = [c for c in trainer.callbacks if not isinstance(c, ModelCheckpoint)]
        trainer.fit()
    print(f"  {arch} {mode} done ({len(timer.pairs)} pairs)", file=sys.stderr, flush=True)
    out: dict[str, float | None] = {"plain_compile": plain.compile_seconds, "trainer_compile": trainer.compile_seconds}
    out["pairs"] = len(timer.pairs)
    loops = ("plain", "trainer", "control") if control else ("plain", "trainer")
    for key in loops:
        for i, suffix in ((0, ""), (1, "_cpu")):
            out[key + suffix] = batch / statistics.median(p[key][i] for p in timer.pairs)
        out[key + "_sys_ms"] = 1e3 * statistics.median(p[key][2] for p in timer.pairs)
        out[key + "_faults"] = statistics.median(p[key][3] for p in timer.pairs)
    for key in loops[1:]:  # per-pair ratios of CPU time (the steps of a pair ran back to back)
        ratios = [p["plain"][1] / p[key][1] for p in timer.pairs]  # >1: faster than the plain loop
        out[f"{key}_pair"], out[f"{key}_lo"], out[f"{key}_hi"] = median_interval(ratios)
    return out


def median_interval(values: list[float], draws: int = 2000) -> tuple[float, float, float]:
    """The median of ``values`` and a 95% bootstrap interval of it (percentiles of resampled medians)."""
    rng = random.Random(0)
    medians = sorted(statistics.median(rng.choices(values, k=len(values))) for _ in range(draws))
    return statistics.median(values), medians[int(0.025 * draws)], medians[int(0.975 * draws) - 1]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _now() -> tuple[float, ...]:
    """Wall time, this process's CPU time, its system CPU time and its minor page faults so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return time.perf_counter(), time.process_time(), usage.ru_stime, float(usage.ru_minflt)


def _since(start: tuple[float, ...]) -> tuple[float, ...]:
    return tuple(b - a for a, b in zip(start, _now()))


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
    parser.add_argument("--steps", type=int, default=4, help="step pairs per epoch (the first is dropped)")
    parser.add_argument("--rounds", type=int, default=3, help="epochs of alternating steps")
    parser.add_argument("--control", action="store_true", help="a second plain loop in each pair (noise floor)")
    parser.add_argument("--modes", nargs="+", default=["all"], choices=[*GROUPS, *MODES], help="modes or groups")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    modes = [m for m in MODES if any(m == s or m in GROUPS.get(s, ()) for s in args.modes)]
    device, nc = torch.device(args.device), 4
    data = InMemory(args.batch * args.steps, args.size, nc)
    print(f"{cpu_line()}\ntorch {torch.__version__}, {torch.get_num_threads()} threads, {device}; "
          f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())} (start)")  # fmt: skip
    rates = {p: [matmul_rate(dtype, device)] for p, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16))}
    results = {arch: {mode: bench_mode(arch, data, args.batch, args.rounds, mode, device, nc, args.control) for mode in modes}
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
        print(f"\n{MODEL_NAME[arch]}, {args.size}x{args.size}, batch {args.batch}, {args.rounds} epochs of "
              f"{args.steps - 1} kept step pairs (Trainer step, then plain step); fwd+bwd {per_image / 1e9:.2f} "
              f"GFLOP/image; floor img/s (wall / CPU time): fp32 {floor['fp32'][0]:.2f} / {floor['fp32'][1]:.2f}, "
              f"bf16 {floor['bf16'][0]:.2f} / {floor['bf16'][1]:.2f}")  # fmt: skip
        control = " | control / plain, per pair (CPU) [95%]" if args.control else ""
        print(f"| mode | compile s (plain / Trainer) | plain img/s | Trainer img/s | Trainer / plain (wall) "
              f"| Trainer / plain (CPU time) | Trainer / plain, per pair (CPU) [95%]{control} | Trainer img per CPU s "
              f"| Trainer / floor (wall) | Trainer / floor (CPU time) |")  # fmt: skip
        print("|---" * (10 if args.control else 9) + "|")
        for mode, r in results[arch].items():
            comp = "-" if r["plain_compile"] is None else f"{r['plain_compile']:.0f} / {r['trainer_compile'] or 0:.0f}"
            plain, ours, plain_cpu, ours_cpu = (
                float(r[k] or 0) for k in ("plain", "trainer", "plain_cpu", "trainer_cpu")
            )
            wall_floor, cpu_floor = floor["bf16" if MODES[mode][0] else "fp32"]
            pairs = [f"{r[k + '_pair']:.3f} [{r[k + '_lo']:.3f}, {r[k + '_hi']:.3f}]"
                     for k in (("trainer", "control") if args.control else ("trainer",))]  # fmt: skip
            print(f"| {mode} | {comp} | {plain:.2f} | {ours:.2f} | {ours / plain:.3f} | {ours_cpu / plain_cpu:.3f} | "
                  f"{' | '.join(pairs)} | {ours_cpu:.2f} | {ours / wall_floor:.3f} | {ours_cpu / cpu_floor:.3f} |",
                  flush=True)  # fmt: skip
        loops = ("plain", "trainer", "control") if args.control else ("plain", "trainer")
        print("\nper step, medians: system CPU ms / minor page faults: " + "; ".join(
            f"{mode} " + ", ".join(f"{k} {r[k + '_sys_ms']:.1f} / {r[k + '_faults']:.0f}" for k in loops)
            for mode, r in results[arch].items()), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
