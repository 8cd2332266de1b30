"""FastFCN (JPU, undilated output-stride-32 ResNet) vs DeepLabV3 (dilated output-stride-8 ResNet): forward time.

Run: ``python bench/models.py [--size 256] [--batch 2] [--runs 5] [--encoder resnet50]``
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from segkit.models import build_model


def _time(model: torch.nn.Module, x: torch.Tensor, runs: int) -> float:
    with torch.inference_mode():
        model(x)  # warm-up: allocator and kernel selection
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    """Print a table of median forward times and the FastFCN / DeepLabV3 ratio."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--encoder", default="resnet50")
    args = parser.parse_args()
    torch.manual_seed(0)
    x = torch.randn(args.batch, 3, args.size, args.size)
    models = {
        "fastfcn (JPU, OS32 backbone, ASPP head)": build_model("fastfcn", num_classes=21, encoder=args.encoder),
        "deeplabv3 (dilated OS8 backbone, ASPP)": build_model("deeplabv3", num_classes=21, encoder=args.encoder),
    }
    print(
        f"input {tuple(x.shape)}, encoder {args.encoder}, CPU threads {torch.get_num_threads()}, median of {args.runs}"
    )
    print(f"{'model':<42} {'params (M)':>10} {'forward (s)':>12}")
    results = {}
    for name, model in models.items():
        results[name] = _time(model.eval(), x, args.runs)
        params = sum(p.numel() for p in model.parameters()) / 1e6
        print(f"{name:<42} {params:>10.2f} {results[name]:>12.3f}")
    fast, deeplab = results.values()
    print(f"ratio fastfcn / deeplabv3: {fast / deeplab:.2f} (below 1 = FastFCN faster)")


if __name__ == "__main__":
    main()
