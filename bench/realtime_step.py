"""Where one training step of a real-time model spends its CPU time: forward, loss, backward + AdamW, with and without
channels_last, its own loss against plain cross-entropy, and at each ``--input-scale`` (issue 28's throughput
question).

Usage: python bench/realtime_step.py [--model ddrnet_23_slim] [--size 320] [--batch 8] [--steps 3]
       [--input-scale 1 --input-scale 0.5]
Prints CPU seconds (median over steps, after one warm-up), one thread, and the CPU. At an input scale below 1 the
step is timed twice: as the Trainer runs it (the mask sampled at the network's size, ``target_at_network_size``)
and with the logits resized back to the crop before the loss (what a loss at the full size costs).
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from segkit import build_loss, build_model
from segkit.engine.loss_target import target_at_network_size


def _full_size(out, size: int):
    """The training outputs resized back to the crop (a loss at the full size)."""
    if isinstance(out, (tuple, list)):
        return tuple(_full_size(o, size) for o in out)
    return F.interpolate(out, size=(size, size), mode="bilinear", align_corners=False)


def step_times(
    model_name: str,
    loss_name: str,
    channels_last: bool,
    size: int,
    batch: int,
    steps: int,
    input_scale: float = 1.0,
    full_size_loss: bool = False,
) -> dict:
    """Median CPU seconds of forward, loss and backward + optimizer step over ``steps`` (one warm-up first)."""
    torch.manual_seed(0)
    x, y = torch.randn(batch, 3, size, size), torch.randint(0, 11, (batch, size, size))
    scaled = {"input_scale": input_scale} if input_scale != 1 else {}  # models without the option too
    model = build_model(model_name, num_classes=11, **scaled).train()
    loss = build_loss(loss_name)
    if channels_last:
        model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    times: dict[str, list[float]] = {"forward": [], "loss": [], "backward+step": []}
    for i in range(steps + 1):
        t0 = time.process_time()
        out = model(x)
        if full_size_loss:
            out = _full_size(out, size)
        t1 = time.process_time()
        target = target_at_network_size(y, out, model)
        value = loss(out, target) if getattr(loss, "takes_outputs", False) else loss(out[0].float(), target)
        t2 = time.process_time()
        value.backward()
        opt.step()
        opt.zero_grad()
        t3 = time.process_time()
        if i:
            for key, t in zip(times, (t1 - t0, t2 - t1, t3 - t2)):
                times[key].append(t)
    return {k: sorted(v)[len(v) // 2] for k, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="ddrnet_23_slim")
    parser.add_argument("--size", type=int, default=320)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--input-scale", type=float, action="append", default=None, help="repeatable (default 1)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (the protocol's is 1)")
    parser.add_argument("--only-own", action="store_true", help="time the model's own loss, channels_last only")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    caps = torch.cpu.get_capabilities() if hasattr(torch.cpu, "get_capabilities") else {}
    print(f"CPU: {caps.get('cpu_name', '?')}, avx512_bf16={caps.get('avx512_bf16')}, amx_bf16={caps.get('amx_bf16')}; "
          f"{args.threads} thread(s)")  # fmt: skip
    own = getattr(build_model(args.model, num_classes=11), "default_loss", "ce")
    print(f"| {args.model} {args.batch}x{args.size}^2 | forward | loss | backward+step | total (CPU s) | img/CPU-s |")
    print("|---|---:|---:|---:|---:|---:|")
    for scale in args.input_scale or [1.0]:
        for full in (False, True) if scale < 1 else (False,):
            for channels_last in (True,) if args.only_own else (True, False):
                for loss_name in (own,) if args.only_own else dict.fromkeys((own, "ce")):
                    t = step_times(args.model, loss_name, channels_last, args.size, args.batch, args.steps, scale, full)
                    row = " | ".join(f"{v:.2f}" for v in t.values())
                    where = "" if scale == 1 else f", input_scale={scale}, loss at {'full' if full else 'network'} size"
                    print(f"| {loss_name}, channels_last={channels_last}{where} | {row} | {sum(t.values()):.2f} | "
                          f"{args.batch / sum(t.values()):.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
