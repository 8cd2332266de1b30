"""Confusion-matrix update: segkit ``ConfusionMatrix`` vs torchmetrics ``MulticlassJaccardIndex``, same predictions.

Usage: python bench/metrics.py [--batch 8] [--size 256] [--classes 19] [--updates 10] [--rounds 5] [--quick]
Both metrics get the same int64 class maps (with ignored pixels); rounds alternate the two and the
median time per update is kept. Both must produce the same mIoU (checked before timing).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from segkit.metrics import ConfusionMatrix


def make_batches(n: int, batch: int, size: int, classes: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``n`` (pred, target) pairs of int64 ``(batch, size, size)``; 5% of target pixels are 255."""
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(n):
        target = torch.randint(0, classes, (batch, size, size), generator=g)
        target[torch.rand(target.shape, generator=g) < 0.05] = 255
        pred = torch.where(torch.rand(target.shape, generator=g) < 0.7, target.clamp_max(classes - 1), 0)
        out.append((pred, target))
    return out


def time_updates(metric: object, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """Median seconds of one ``update`` over ``batches``."""
    times = []
    for pred, target in batches:
        start = time.perf_counter()
        metric.update(pred, target)  # type: ignore[attr-defined]
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--classes", type=int, default=19)
    parser.add_argument("--updates", type=int, default=10, help="updates per round")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds; medians over all")
    parser.add_argument("--quick", action="store_true", help="batch 2, 64x64, 3 updates, 2 rounds")
    args = parser.parse_args()
    if args.quick:
        args.batch, args.size, args.updates, args.rounds = 2, 64, 3, 2
    from torchmetrics.classification import MulticlassJaccardIndex

    c = args.classes
    batches = make_batches(args.updates, args.batch, args.size, c)
    ours_m, theirs_m = ConfusionMatrix(c), MulticlassJaccardIndex(c, ignore_index=255, average="macro")
    for pred, target in batches:
        ours_m.update(pred, target)
        theirs_m.update(pred, target)
    ours_miou, theirs_miou = ours_m.compute()["miou"], float(theirs_m.compute())
    if abs(ours_miou - theirs_miou) > 1e-5:
        raise SystemExit(f"mIoU differs: segkit {ours_miou:.6f} vs torchmetrics {theirs_miou:.6f}")
    ours: list[float] = []
    theirs: list[float] = []
    for _ in range(args.rounds):
        ours.append(time_updates(ConfusionMatrix(c), batches))
        theirs.append(time_updates(MulticlassJaccardIndex(c, ignore_index=255, average="macro"), batches))
    t_ours, t_theirs = statistics.median(ours), statistics.median(theirs)
    mpix = args.batch * args.size * args.size / 1e6
    print(
        f"update of {args.batch}x{args.size}x{args.size} int64 class maps, {c} classes, 5% ignored, "
        f"{args.updates} updates x {args.rounds} alternating rounds, {torch.get_num_threads()} threads"
    )
    print(f"same mIoU: segkit {ours_miou:.6f}, torchmetrics {theirs_miou:.6f}")
    print("| metric | ms / update | Mpixel/s | speed vs torchmetrics |")
    print("|---|---|---|---|")
    print(f"| torchmetrics MulticlassJaccardIndex | {t_theirs * 1e3:.2f} | {mpix / t_theirs:.1f} | 1.00x |")
    print(f"| segkit ConfusionMatrix | {t_ours * 1e3:.2f} | {mpix / t_ours:.1f} | {t_theirs / t_ours:.2f}x |")


if __name__ == "__main__":
    main()
