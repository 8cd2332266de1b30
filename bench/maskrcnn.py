"""Mask R-CNN training step: segkit ``Trainer`` vs a plain torchvision training loop, on shapes instances.

Usage: python bench/maskrcnn.py [--size 96] [--batch 2] [--steps 6] [--rounds 3] [--backbone resnet18_fpn] [--quick]
       python bench/maskrcnn.py --recipes [--batch 8] [--steps 7] [--rounds 2]
Same model (``build_model("mask_rcnn", ...)``, random init, same seed), same in-memory samples, same batch
and optimizer (SGD, as torchvision's detection reference). Images/s = batch / median step time (first step
dropped); rounds alternate the two loops and the median over rounds is kept.

``--recipes``: the speed levers of issue 19 one at a time, from configs/shapes_maskrcnn.yaml's model towards
configs/shapes_maskrcnn_fast.yaml's (bf16 autocast, RoIAlign sampling 1, channels_last, 32 RoIs, 64-wide FPN), in
images per CPU-second of a plain training step (process CPU time, so other jobs on a shared machine do not count).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from segkit import Trainer, build_dataset, build_model
from segkit.datasets import collate_instances
from segkit.engine.callbacks import Callback


class Samples(Dataset):
    """Pre-generated samples, so neither loop pays for drawing the shapes."""

    def __init__(self, samples: list[dict[str, Any]]) -> None:
        self.samples = samples
        self.num_classes = 4

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.samples[i]


def make_model(args: argparse.Namespace) -> nn.Module:
    torch.manual_seed(0)
    # Anchors: one size per level of the light ResNets (4), all sizes on each level of the MobileNet (3 levels).
    anchors = (16, 32, 64) if args.backbone == "mobilenet_v3_large" else (16, 32, 64, 128)
    return build_model("mask_rcnn", num_classes=4, backbone=args.backbone, min_size=args.size, max_size=args.size,
                       rpn_anchor_sizes=anchors, box_batch_size_per_image=32, rpn_post_nms_top_n_train=200)  # fmt: skip


def plain_loop(data: Dataset, args: argparse.Namespace) -> float:
    """Images/s of torchvision's reference-style loop (list images, dict of losses summed)."""
    model = make_model(args)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    loader = DataLoader(data, batch_size=args.batch, shuffle=True, collate_fn=collate_instances)
    times = [time.perf_counter()]
    for b in loader:
        losses = model(b["image"], b["target"])
        loss = sum(losses.values())
        opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[union-attr]
        opt.step()
        times.append(time.perf_counter())
    return _rate(times, args.batch)


class _StepTimer(Callback):
    def __init__(self) -> None:
        self.times: list[float] = []

    def on_epoch_start(self, trainer: Trainer) -> None:
        self.times = [time.perf_counter()]

    def on_train_batch_end(self, trainer: Trainer, outputs: dict) -> None:
        self.times.append(time.perf_counter())


def trainer_loop(data: Dataset, args: argparse.Namespace) -> float:
    """Images/s of ``Trainer(task="instance")`` with the same model, data and optimizer settings."""
    timer = _StepTimer()
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(make_model(args), None, data, None, task="instance", epochs=1, batch_size=args.batch,
                          lr=0.01, weight_decay=1e-4, optimizer="sgd", scheduler=None, device="cpu",
                          log_every=10**9, callbacks=[timer], out_dir=tmp)  # fmt: skip
        trainer.fit()
    return _rate(timer.times, args.batch)


def _rate(times: list[float], batch: int) -> float:
    steps = [b - a for a, b in zip(times[1:], times[2:])]  # the first step is warm-up
    return batch / statistics.median(steps)


# name: (model options over configs/shapes_maskrcnn.yaml's, bf16 autocast, channels_last)
RECIPES: dict[str, tuple[dict[str, Any], bool, bool]] = {
    "shapes_maskrcnn.yaml (fp32)": ({}, False, False),
    "roi_sampling_ratio 1": ({"roi_sampling_ratio": 1}, False, False),
    "bf16 autocast": ({}, True, False),
    "channels_last": ({}, False, True),
    "bf16 + roi_sampling_ratio 1": ({"roi_sampling_ratio": 1}, True, False),
    "bf16 + sampling 1 + channels_last": ({"roi_sampling_ratio": 1}, True, True),
    "bf16 + sampling 1 + 32 RoIs": ({"roi_sampling_ratio": 1, "box_batch_size_per_image": 32}, True, False),
    "bf16 + sampling 1 + fpn_channels 64": ({"roi_sampling_ratio": 1, "fpn_channels": 64}, True, False),
    "shapes_maskrcnn_fast.yaml (all of the above but channels_last)": (
        {"roi_sampling_ratio": 1, "fpn_channels": 64, "box_batch_size_per_image": 32},
        True,
        False,
    ),
}


def recipe_rate(name: str, batches: list[dict[str, Any]]) -> float:
    """Images per CPU-second of an AdamW training step of the shapes config's model with recipe ``name``."""
    import yaml

    options, bf16, channels_last = RECIPES[name]
    config = yaml.safe_load(open(__file__.rsplit("/", 2)[0] + "/configs/shapes_maskrcnn.yaml"))["model"]
    torch.manual_seed(0)
    model = build_model(
        "mask_rcnn", **{**{k: v for k, v in config.items() if k != "name"}, "num_classes": 4, **options}
    )
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    times = []
    for b in batches:
        start = time.process_time()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            losses = model(list(b["image"]), b["target"])
        loss = sum(losses.values())
        if not torch.isfinite(loss):  # type: ignore[arg-type]
            raise RuntimeError(f"{name}: non-finite loss {losses}")
        opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[union-attr]
        opt.step()
        times.append(time.process_time() - start)
    return len(b["image"]) / statistics.median(times[1:])


def recipes(args: argparse.Namespace) -> None:
    ds = build_dataset("shapes", split="train", num_images=args.batch * args.steps, image_size=96, task="instance",
                       max_objects=4)  # fmt: skip
    batches = [collate_instances([ds[i] for i in range(j, j + args.batch)]) for j in range(0, len(ds), args.batch)]
    runs: dict[str, list[float]] = {name: [] for name in RECIPES}
    for _ in range(args.rounds):
        for name in RECIPES:
            runs[name].append(recipe_rate(name, batches))
    base = statistics.median(runs[next(iter(RECIPES))])
    print(f"Mask R-CNN resnet18_fpn (random init), shapes 96x96, batch {args.batch}, AdamW, median of "
          f"{args.steps - 1} steps, {args.rounds} alternating rounds, cpu, {torch.get_num_threads()} threads")  # fmt: skip
    print("| recipe | img per CPU-s (median) | all rounds | vs shapes_maskrcnn.yaml |")
    print("|---|---|---|---|")
    for name, values in runs.items():
        rate = statistics.median(values)
        print(f"| {name} | {rate:.1f} | {' '.join(f'{v:.1f}' for v in values)} | {rate / base:.2f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=6, help="steps per run (the first is warm-up)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs per loop; medians kept")
    parser.add_argument("--backbone", default="resnet18_fpn", help="mask_rcnn backbone")
    parser.add_argument("--quick", action="store_true", help="64 px, 3 steps, 1 round")
    parser.add_argument("--recipes", action="store_true", help="issue 19's speed levers, in img per CPU-second")
    args = parser.parse_args()
    if args.recipes:
        return recipes(args)
    if args.quick:
        args.size, args.steps, args.rounds = 64, 3, 1
    ds = build_dataset("shapes", split="train", num_images=args.batch * args.steps, image_size=args.size,
                       task="instance", max_objects=3)  # fmt: skip
    data = Samples([ds[i] for i in range(len(ds))])
    runs: dict[str, list[float]] = {"plain": [], "trainer": []}
    for _ in range(args.rounds):
        runs["plain"].append(plain_loop(data, args))
        runs["trainer"].append(trainer_loop(data, args))
    plain, ours = statistics.median(runs["plain"]), statistics.median(runs["trainer"])
    print(
        f"Mask R-CNN {args.backbone} (random init), shapes {args.size}x{args.size}, batch {args.batch}, SGD, "
        f"median of {args.steps - 1} steps, median of {args.rounds} alternating rounds, cpu, {torch.get_num_threads()} threads"
    )
    print("| loop | img/s (median) | all rounds | vs plain |")
    print("|---|---|---|---|")
    for name, key, value in (("plain torchvision loop", "plain", plain), ("segkit Trainer", "trainer", ours)):
        rounds = " ".join(f"{r:.2f}" for r in runs[key])
        print(f"| {name} | {value:.2f} | {rounds} | {value / plain:.3f}x |")


if __name__ == "__main__":
    main()
