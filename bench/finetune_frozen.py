"""What a frozen encoder saves: forward and backward of one training step, frozen against unfrozen, same batch.

Usage::

    python bench/finetune_frozen.py                      # U-Net resnet34, batch 2 of 256x256, 1 thread
    python bench/finetune_frozen.py --encoder resnet18 --batch 4 --steps 8 --threads 2

Two copies of the same model (same initial weights): one trains everything, one has its encoder frozen the way
the Trainer freezes it (``segkit.engine.finetune.set_frozen`` + ``hold_frozen_norms``: no gradient, BatchNorm in
eval mode). The two alternate step by step on the same batch, so both see the same load from other jobs; the
first pair is dropped (allocator warm-up). Forward (model + cross-entropy) and backward are timed apart, in wall
time and in this process's CPU time (on a shared machine the CPU time is the one that does not depend on how much
of a core the other jobs left), median over the pairs. The FLOPs of each part (``FlopCounterMode``) give the
saving to expect whatever the load: a frozen encoder skips its backward (weight and input gradients).

The run also checks what the saving rests on: after a frozen step no encoder parameter has a ``.grad`` and the
encoder's outputs carry no autograd node (``grad_fn is None``).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from segkit.engine.finetune import hold_frozen_norms, resolve_prefixes, set_frozen  # noqa: E402
from segkit.models import build_model  # noqa: E402


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``) and the instruction set torch uses."""
    name = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as fh:
            name = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{name}, {os.cpu_count()} logical CPUs, torch CPU capability {torch.backends.cpu.get_cpu_capability()}"


def build(encoder: str, classes: int, frozen: bool) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model("unet", encoder=encoder, num_classes=classes, encoder_weights=None)
    model.train()
    if frozen:
        prefixes = resolve_prefixes(model, "encoder", "freeze")
        set_frozen(model, prefixes, True)
        hold_frozen_norms(model, prefixes)
    return model


def flops(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(forward, backward) GFLOPs of one step."""
    with FlopCounterMode(display=False) as fwd:
        loss = F.cross_entropy(model(x), y)
    with FlopCounterMode(display=False) as bwd:
        loss.backward()
    model.zero_grad(set_to_none=True)
    return fwd.get_total_flops() / 1e9, bwd.get_total_flops() / 1e9


def check_frozen(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[bool, bool]:
    """(no encoder parameter got a gradient, no encoder output has an autograd node) after one step."""
    encoder = model.get_submodule("model.encoder")
    outputs: list[torch.Tensor] = []
    hook = encoder.register_forward_hook(lambda m, i, out: outputs.extend(out))
    F.cross_entropy(model(x), y).backward()
    hook.remove()
    no_grad = all(p.grad is None for p in encoder.parameters())
    no_node = all(t.grad_fn is None and not t.requires_grad for t in outputs)
    model.zero_grad(set_to_none=True)
    return no_grad, no_node


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", default="resnet34")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--classes", type=int, default=12)
    parser.add_argument("--steps", type=int, default=6, help="timed pairs (one more is run and dropped)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    x = torch.randn(args.batch, 3, args.size, args.size)
    y = torch.randint(0, args.classes, (args.batch, args.size, args.size))
    models = {"unfrozen": build(args.encoder, args.classes, False), "frozen": build(args.encoder, args.classes, True)}
    counted = {name: flops(m, x, y) for name, m in models.items()}
    load_before = os.getloadavg()
    times: dict[str, dict[str, list[float]]] = {n: {k: [] for k in ("fw", "bw", "fc", "bc")} for n in models}
    for step in range(args.steps + 1):
        for name, model in models.items():
            w0, c0 = time.perf_counter(), time.process_time()
            loss = F.cross_entropy(model(x), y)
            w1, c1 = time.perf_counter(), time.process_time()
            loss.backward()
            w2, c2 = time.perf_counter(), time.process_time()
            model.zero_grad(set_to_none=True)
            if step:
                for key, value in (("fw", w1 - w0), ("bw", w2 - w1), ("fc", c1 - c0), ("bc", c2 - c1)):
                    times[name][key].append(value)
    load_after = os.getloadavg()
    no_grad, no_node = check_frozen(models["frozen"], x, y)

    print(f"U-Net {args.encoder}, batch {args.batch} of {args.size}x{args.size}, {args.classes} classes, "
          f"{args.threads} thread(s), median of {args.steps} alternating pairs; torch {torch.__version__}")  # fmt: skip
    print(f"CPU: {cpu_name()}")
    print(f"load average (1, 5, 15 min) before {load_before}, after {load_after}")
    print(f"frozen step: encoder parameters without .grad: {no_grad}; encoder outputs without autograd node: {no_node}")
    print()
    print(
        "| variant | fwd GFLOP | bwd GFLOP | fwd s (wall) | bwd s (wall) | fwd s (CPU) | bwd s (CPU) | step s (CPU) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    med = {n: {k: statistics.median(v) for k, v in t.items()} for n, t in times.items()}
    for name in models:
        m, (ff, bf) = med[name], counted[name]
        print(f"| {name} | {ff:.1f} | {bf:.1f} | {m['fw']:.3f} | {m['bw']:.3f} | {m['fc']:.3f} | {m['bc']:.3f} "
              f"| {m['fc'] + m['bc']:.3f} |")  # fmt: skip
    ratio_flops = sum(counted["frozen"]) / sum(counted["unfrozen"])
    ratio_cpu = (med["frozen"]["fc"] + med["frozen"]["bc"]) / (med["unfrozen"]["fc"] + med["unfrozen"]["bc"])
    ratio_wall = (med["frozen"]["fw"] + med["frozen"]["bw"]) / (med["unfrozen"]["fw"] + med["unfrozen"]["bw"])
    print(f"\nfrozen / unfrozen step: FLOPs {ratio_flops:.2f}, CPU time {ratio_cpu:.2f}, wall time {ratio_wall:.2f}")


if __name__ == "__main__":
    main()
