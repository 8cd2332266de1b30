"""torch.profiler tables of the U-Net resnet18 training step in one mode: the plain loop and the segkit ``Trainer``.

Usage: python bench/profile_step.py [--mode bf16-cl-compiled] [--size 256] [--batch 4] [--steps 4] [--rows 15]
                                    [--loops plain trainer]
Modes are those of bench/trainer.py (fp32, fp32-cl, bf16, bf16-cl, each also ``-compiled``). Each loop is warmed
up first (the compile, when compiling), then its next ``steps - 1`` steps are profiled and the operators printed by
self CPU time, with a summary of where the step goes: convolutions and matmuls (the part bounded by the matmul
rate), the optimizer, layout conversions and casts, and the rest (memory-bound elementwise work, the loss). When
compiling, inductor's own kernels are profiled one by one (``cpp.enable_kernel_profile``).
"""

from __future__ import annotations

import argparse
import tempfile
from collections import defaultdict

import torch
import torch._inductor.config
from torch.profiler import ProfilerActivity, profile
from trainer import MODES, InMemory, PlainLoop, make_model  # bench/trainer.py (the script's folder is on sys.path)

from segkit import Trainer
from segkit.engine.callbacks import Callback

# Substrings of operator names, by the part of the step they are (first match wins).
CATEGORIES = (
    ("inductor fused kernels (elementwise, norms)", ("cpp_fused", "kernel_cpp")),
    ("convolution / matmul", ("conv", "aten::mm", "aten::addmm", "aten::bmm", "matmul", "linear")),
    ("optimizer", ("adam", "sgd", "_foreach", "optimizer")),
    ("layout / cast / copy", ("aten::copy_", "aten::_to_copy", "aten::clone", "aten::cat", "to_dense", "reorder")),
)


class _Profile(Callback):
    """Starts the profiler after the first batch (the compile), stops it at the end of the epoch."""

    def __init__(self) -> None:
        self.prof = profile(activities=[ProfilerActivity.CPU])
        self.started = False

    def on_train_batch_end(self, trainer: Trainer, outputs: dict) -> None:
        if not self.started:
            self.prof.__enter__()
            self.started = True

    def on_epoch_end(self, trainer: Trainer, metrics: dict) -> None:
        self.prof.__exit__(None, None, None)


def summary(prof: profile, steps: int) -> str:
    """Self CPU time per step by category (leaf operators only, so nothing is counted twice)."""
    totals: dict[str, float] = defaultdict(float)
    for event in prof.key_averages():
        if event.self_cpu_time_total <= 0:
            continue
        name = event.key.lower()
        part = next((c for c, keys in CATEGORIES if any(k in name for k in keys)), "elementwise, loss, other")
        totals[part] += event.self_cpu_time_total
    whole = sum(totals.values())
    parts = sorted(totals.items(), key=lambda kv: -kv[1])
    return f"self CPU per step {whole / steps / 1e3:.0f} ms: " + "; ".join(
        f"{name} {t / steps / 1e3:.0f} ms ({t / whole:.0%})" for name, t in parts
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", default="bf16-cl-compiled", choices=list(MODES))
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=4, help="steps per loop; the first (warm-up) is not profiled")
    parser.add_argument("--rows", type=int, default=15)
    parser.add_argument("--loops", nargs="+", default=["plain", "trainer"], choices=["plain", "trainer"])
    args = parser.parse_args()
    amp, channels_last, compiled = MODES[args.mode]
    torch._inductor.config.cpp.enable_kernel_profile = True  # each inductor kernel its own profiler row
    data, device, nc = InMemory(args.batch * args.steps, args.size, 4), torch.device("cpu"), 4
    title = f"U-Net resnet18 {args.size}x{args.size} batch {args.batch}, {args.mode}, {torch.get_num_threads()} threads"
    profiled = args.steps - 1

    if "plain" in args.loops:
        plain = PlainLoop("unet", data, args.batch, args.mode, device, nc)  # warm-up step (and compile) done
        batches = list(plain.loader)[:profiled]
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for b in batches:
                plain.step(b)
        print(f"== plain loop, {profiled} steps, {title}\n{summary(prof, profiled)}")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))

    if "trainer" in args.loops:
        cb = _Profile()
        with tempfile.TemporaryDirectory() as tmp:
            Trainer(make_model("unet", nc, channels_last, device), "ce", data, None, epochs=1, batch_size=args.batch,
                    lr=1e-3, scheduler=None, amp=amp, compile=compiled, channels_last=channels_last, device=device,
                    log_every=10**9, callbacks=[cb], out_dir=tmp).fit()  # fmt: skip
        print(f"== segkit Trainer, {profiled} steps, {title}")
        print(summary(cb.prof, profiled))
        print(cb.prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))


if __name__ == "__main__":
    main()
