"""Forward+backward time of every registered loss relative to ``ce``, and Lovász against smp, in one run.

Usage: ``python bench/losses.py [--device cpu|cuda] [--shape 8 19 256 256] [--repeats 3]``
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from segkit.losses import LOSSES
from segkit.losses.functional_distance import distance_field, distance_penalty, onehot_target, signed_distance_map


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timeit(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
    """Median seconds of ``fn`` over ``repeats`` runs after one warm-up."""
    fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--shape", type=int, nargs=4, default=(8, 19, 256, 256))
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    device = torch.device(args.device)
    n, c, h, w = args.shape
    g = torch.Generator().manual_seed(0)
    logits_mc = torch.randn(n, c, h, w, generator=g).to(device)
    target_mc = torch.randint(0, c, (n, h // 16, w // 16), generator=g)
    target_mc = target_mc.repeat_interleave(16, 1).repeat_interleave(16, 2)  # blocky regions, like real masks
    target_mc[:, :4] = 255
    target_mc = target_mc.to(device)
    logits_bin = torch.randn(n, 1, h, w, generator=g).to(device)
    target_bin = (target_mc % 2).masked_fill(target_mc == 255, 255)
    iou = torch.rand(n, h, w, generator=g).to(device)
    maps = {
        "dist_map": torch.from_numpy(signed_distance_map(onehot_target(target_mc, c))).to(device),
        "hd_dist_map": torch.from_numpy(distance_field(onehot_target(target_mc, c))).to(device),
        "penalty_map": torch.from_numpy(distance_penalty(target_mc, c)).to(device),
    }

    def step(
        loss: torch.nn.Module, logits: torch.Tensor, target: torch.Tensor, **kw: torch.Tensor
    ) -> Callable[[], object]:
        def run() -> None:
            x = logits.detach().requires_grad_()
            loss(x, target, **kw).backward()

        return run

    rows: list[tuple[str, float]] = []
    seen = set()
    for name in LOSSES.names():
        cls = LOSSES.get(name)
        if getattr(cls, "takes_outputs", False) or cls in seen:  # aliases (lovasz = lovasz_softmax) once
            continue
        seen.add(cls)
        binary = getattr(cls, "mode", None) == "binary"
        logits, target = (logits_bin, target_bin) if binary else (logits_mc, target_mc)
        kw = {"iou": iou} if "iou" in getattr(cls, "extra_inputs", ()) else {}
        rows.append(
            (
                name + (" (binary)" if binary else ""),
                timeit(step(LOSSES.build(name), logits, target, **kw), device, args.repeats),
            )
        )
        for key in getattr(cls, "extra_inputs", ()):
            if key in maps:
                t = timeit(step(LOSSES.build(name), logits, target, **{key: maps[key]}), device, args.repeats)
                rows.append((f"{name} (precomputed {key})", t))
    rows.append(
        (
            "distance maps alone (signed, batch)",
            timeit(lambda: signed_distance_map(onehot_target(target_mc, c)), device, args.repeats),
        )
    )
    # The part of hausdorff_dt no data worker can precompute: the prediction's field, every step. Random logits
    # threshold to scattered pixels (each touches the background: the inside transform is skipped); a trained
    # model's prediction is blob-shaped like the target, so both transforms run: time that case too.
    pred_masks = (torch.softmax(logits_mc, 1)[:, 1:] > 0.5).cpu()
    rows.append(
        ("prediction fields alone (hausdorff_dt d_p)", timeit(lambda: distance_field(pred_masks), device, args.repeats))
    )
    onehot_mc = torch.from_numpy(onehot_target(target_mc, c)).to(device=device, dtype=logits_mc.dtype)
    logits_blob = 4 * onehot_mc + logits_mc  # a "trained" prediction: the target's blocks plus noise
    hd = step(LOSSES.build("hausdorff_dt"), logits_blob, target_mc, hd_dist_map=maps["hd_dist_map"])
    rows.append(("hausdorff_dt (precomputed, blob prediction)", timeit(hd, device, args.repeats)))

    from segmentation_models_pytorch.losses import LovaszLoss

    smp_lovasz = LovaszLoss("multiclass", per_image=False, ignore_index=255)
    rows.append(("smp LovaszLoss (multiclass)", timeit(step(smp_lovasz, logits_mc, target_mc), device, args.repeats)))
    smp_hinge = LovaszLoss("binary", per_image=True, ignore_index=255)
    rows.append(("smp LovaszLoss (binary)", timeit(step(smp_hinge, logits_bin, target_bin), device, args.repeats)))

    times = dict(rows)
    ce = times["ce"]
    print(
        f"device={device} shape={tuple(args.shape)} repeats={args.repeats} torch={torch.__version__} threads={torch.get_num_threads()}"
    )
    print(f"{'loss (forward+backward)':45s} {'ms':>9s} {'x ce':>7s}")
    for name, t in rows:
        print(f"{name:45s} {t * 1e3:9.1f} {t / ce:7.2f}")
    print(f"\nLovász-Softmax speed-up over smp: {times['smp LovaszLoss (multiclass)'] / times['lovasz']:.2f}x")
    print(f"Lovász hinge speed-up over smp:   {times['smp LovaszLoss (binary)'] / times['lovasz_hinge (binary)']:.2f}x")


if __name__ == "__main__":
    main()
