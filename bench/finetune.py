"""Fine-tuning against training from scratch at the same number of steps, on real CamVid frames.

Usage::

    python bench/finetune.py --root /path/to/CamVid            # or SEGKIT_CAMVID=/path/to/CamVid
    python bench/finetune.py --root ... --pretrain-epochs 12 --epochs 10 --write-results

The task the checkpoint was trained on and the task it is fine-tuned to differ in images and in classes:

- CamVid train (367 frames) is split in two halves by a seeded shuffle. **Task A**: half A with the 11 CamVid
  classes. **Task B**: half B regrouped into 4 classes (sky; structure and vegetation = building, pole, tree,
  sign, fence; ground = road, pavement; movable = car, pedestrian, bicyclist), void ignored. Both are written
  as folders (``images/`` + ``masks/`` PNGs, frames halved to 240x180), read by segkit's ``folder`` dataset;
  CamVid val (101 frames) regrouped the same way is the validation set of task B.
- **pretrain**: U-Net resnet18 (random init) on task A for ``--pretrain-epochs``.
- **fine-tune**: ``model.weights`` = that checkpoint (every tensor but the 11-class head loaded; a new 4-class
  head), ``freeze: encoder`` for the first epoch, ``unfreeze_at: 1``, ``lr_mult: {encoder: 0.3}``.
- **scratch**: the same model, loss, data, schedule and ``--epochs`` from random weights.

Both task-B runs validate after every epoch (val mIoU over 4 classes, 240x180). The result is the number of
steps the fine-tuned run needs to reach the scratch run's final val mIoU (goal: at most half of scratch's).
Prints a table and, with ``--write-results``, writes its block into bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shlex
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

# 11 CamVid classes -> 4: sky, structure and vegetation, ground, movable; void (11) -> 255.
REGROUP = np.array([0, 1, 1, 2, 2, 1, 1, 1, 3, 3, 3, 255] + [255] * 244, np.uint8)
CAMVID_NAMES = [
    "sky",
    "building",
    "pole",
    "road",
    "pavement",
    "tree",
    "sign",
    "fence",
    "car",
    "pedestrian",
    "bicyclist",
]
GROUP_NAMES = ["sky", "structure", "ground", "movable"]
MODEL = {"name": "unet", "encoder": "resnet18", "encoder_weights": None, "decoder_channels": [128, 64, 32, 16, 16]}


def write_folder(root: Path, frames: list[Path], labels: Path, out: Path, table: np.ndarray | None) -> Path:
    """Halve each frame (area) and its label (nearest), map labels through ``table`` (None: void -> 255)."""
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    for frame in frames:
        image = cv2.imread(str(frame), cv2.IMREAD_COLOR)
        label = cv2.imread(str(labels / frame.name), cv2.IMREAD_UNCHANGED)
        image = cv2.resize(image, (240, 180), interpolation=cv2.INTER_AREA)
        label = cv2.resize(label, (240, 180), interpolation=cv2.INTER_NEAREST)
        label = table[label] if table is not None else np.where(label == 11, 255, label).astype(np.uint8)
        cv2.imwrite(str(out / "images" / frame.name), image)
        cv2.imwrite(str(out / "masks" / frame.name), label)
    return out


def prepare(root: Path, work: Path, seed: int) -> dict[str, Path]:
    """Write task A (half A, 11 classes), task B (half B, 4 classes) and val B; return their folders."""
    frames = sorted((root / "train").glob("*.png"))
    random.Random(seed).shuffle(frames)
    half = len(frames) // 2
    val = sorted((root / "val").glob("*.png"))
    return {
        "a": write_folder(root, frames[:half], root / "trainannot", work / "task_a", None),
        "b": write_folder(root, frames[half:], root / "trainannot", work / "task_b", REGROUP),
        "val_b": write_folder(root, val, root / "valannot", work / "val_b", REGROUP),
    }


def run(name: str, cfg: dict[str, Any], out: Path) -> list[dict[str, float]]:
    """Train one arm with the Trainer from a config; return its epoch rows (step, val mIoU, seconds)."""
    from segkit import Trainer
    from segkit.config import config_from_dict

    cfg["train"]["out_dir"] = str(out / name)
    trainer = Trainer.from_config(config_from_dict(cfg))
    start = time.perf_counter()
    trainer.fit()
    rows = [json.loads(line) for line in (out / name / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in rows if "epoch" in r]
    return [{"epoch": r["epoch"] + 1, "step": r["step"], "miou": r.get("val/miou", float("nan"))} for r in epochs] + [
        {"seconds": time.perf_counter() - start}
    ]


def steps_to_reach(rows: list[dict[str, float]], target: float) -> int | None:
    """The first step at which the run's val mIoU reached ``target`` (None if never)."""
    return next((int(r["step"]) for r in rows if "miou" in r and r["miou"] >= target), None)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Prepare the two tasks, pretrain, fine-tune and train from scratch; print and return the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=os.environ.get("SEGKIT_CAMVID"), help="CamVid (SegNet layout)")
    parser.add_argument("--out", default="runs/bench_finetune")
    parser.add_argument("--pretrain-epochs", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=10, help="epochs of each task-B run")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--crop", type=int, default=160)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write-results", action="store_true", help="write the block into bench/RESULTS.md")
    args = parser.parse_args(argv)
    if not args.root:
        parser.error("--root (or SEGKIT_CAMVID) is required: a CamVid folder in the SegNet layout")
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    folders = prepare(Path(args.root), out / "data", args.seed)
    crops = {"crop_size": args.crop, "scale": [0.75, 1.25]}
    train = {"epochs": args.epochs, "batch_size": args.batch_size, "lr": 3e-3, "warmup_iters": 20, "device": "cpu",
             "seed": args.seed, "log_every": 1000}  # fmt: skip

    def task_b(extra_model: dict[str, Any], extra_train: dict[str, Any]) -> dict[str, Any]:
        data = {"name": "folder", "root": str(folders["b"]), "num_classes": 4, "class_names": GROUP_NAMES,
                "verbose": False, "train": {"transforms": crops}, "val": {"root": str(folders["val_b"])}}  # fmt: skip
        return {"model": {**MODEL, **extra_model}, "loss": "ce+dice", "data": data,
                "train": {**train, **extra_train}}  # fmt: skip

    task_a = {"model": dict(MODEL), "loss": "ce",
              "data": {"name": "folder", "root": str(folders["a"]), "num_classes": 11, "class_names": CAMVID_NAMES,
                       "verbose": False, "train": {"transforms": crops}, "val": None},
              "train": {**train, "epochs": args.pretrain_epochs}}  # fmt: skip
    pre = run("pretrain", task_a, out)
    checkpoint = out / "pretrain" / "last.pt"
    fine = run(
        "finetune",
        task_b({"weights": str(checkpoint)}, {"freeze": "encoder", "unfreeze_at": 1, "lr_mult": {"encoder": 0.3}}),
        out,
    )
    scratch = run("scratch", task_b({}, {}), out)
    target = scratch[-2]["miou"]
    reached = steps_to_reach(fine, target)
    total = int(scratch[-2]["step"])
    result = {
        "cpu": platform.processor() or platform.machine(),
        "capability": torch.backends.cpu.get_cpu_capability(),
        "torch": torch.__version__,
        "threads": args.threads,
        "pretrain_steps": int(pre[-2]["step"]) if len(pre) > 1 else 0,
        "fine": fine[:-1],
        "scratch": scratch[:-1],
        "scratch_final": target,
        "fine_final": fine[-2]["miou"],
        "fine_steps_to_scratch_final": reached,
        "scratch_steps": total,
        "seconds": {"pretrain": pre[-1]["seconds"], "finetune": fine[-1]["seconds"], "scratch": scratch[-1]["seconds"]},
    }
    (out / "results.json").write_text(json.dumps(result, indent=1))
    print(table(result))
    if args.write_results:
        write_results(result, argv)
    return result


def table(r: dict[str, Any]) -> str:
    """The Markdown table: val mIoU of both task-B runs after each epoch, and the steps-to-reach line."""
    lines = ["| epoch | step | fine-tuned val mIoU | scratch val mIoU |", "|---:|---:|---:|---:|"]
    for f, s in zip(r["fine"], r["scratch"]):
        lines.append(f"| {int(f['epoch'])} | {int(f['step'])} | {f['miou']:.4f} | {s['miou']:.4f} |")
    reached = r["fine_steps_to_scratch_final"]
    share = f"{reached / r['scratch_steps']:.2f}x" if reached else "never"
    lines.append("")
    lines.append(
        f"Scratch ends at {r['scratch_final']:.4f} after {r['scratch_steps']} steps; the fine-tuned run reaches it "
        f"after {reached if reached else 'never'} steps ({share} of scratch's; goal <= 0.5x), and ends at "
        f"{r['fine_final']:.4f}. Pretraining on task A took {r['pretrain_steps']} steps (not counted)."
    )
    return "\n".join(lines)


def write_results(r: dict[str, Any], argv: list[str] | None, path: Path | None = None) -> None:
    """Replace (or append) the fine-tuning block of bench/RESULTS.md (or ``path``); ``argv`` None: the command
    line's own arguments (``sys.argv[1:]``), so the recorded command is the one that was run."""
    path = path or Path(__file__).with_name("RESULTS.md")
    args = sys.argv[1:] if argv is None else argv
    text = path.read_text() if path.is_file() else ""
    begin, end = "<!-- finetune:start -->", "<!-- finetune:end -->"
    load = os.getloadavg()
    block = "\n".join(
        [
            begin,
            "## Fine-tuning: a CamVid checkpoint to a task with other classes, against scratch at equal steps",
            "",
            f"Command: `python bench/finetune.py {shlex.join(args)}`. CPU: {r['cpu']} "
            f"(torch capability {r['capability']}), torch {r['torch']}, {r['threads']} threads, fp32; load "
            f"average at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1/5/15 min). Wall time: pretrain "
            f"{r['seconds']['pretrain']:.0f} s, fine-tune {r['seconds']['finetune']:.0f} s, scratch "
            f"{r['seconds']['scratch']:.0f} s.",
            "",
            table(r),
            end,
        ]
    )
    if begin in text and end in text:
        text = text[: text.index(begin)] + block + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)


if __name__ == "__main__":
    main()
