"""CamVid, equal wall-clock budget: segkit's recipe (a config file) against a plain hand-written smp loop.

Usage::

    python bench/camvid.py --root /path/to/CamVid --minutes 20
    # root may also come from the SEGKIT_CAMVID environment variable

Both trainings run at the same time, each in its own process pinned to one thread
(``torch.set_num_threads(1)``, ``OMP_NUM_THREADS=1``, ``cv2.setNumThreads(1)``), so on a shared
machine both see the same load. Each trains for ``--minutes`` of wall-clock time (data loading
included), then is evaluated on the 101 val frames at their full 480x360 resolution with the same
``ConfusionMatrix``.

- segkit: ``Trainer.from_config(configs/camvid_unet.yaml)``; the poly schedule runs on the clock
  (``lr = base * warm-up * (1 - elapsed / budget) ** 0.9``) so the decay ends with the budget;
  no validation during training (the budget goes to training). Its final checkpoint is written to
  ``OUT/segkit/final.pt`` and evaluated exactly as ``segkit evaluate`` does (same code path, same
  batch size, full resolution), so ``segkit evaluate --checkpoint OUT/segkit/final.pt --set
  data.root=PATH`` prints the same mIoU.
- plain: ``smp.Unet`` with the same encoder (default decoder), random init, cross-entropy, AdamW at a
  constant lr 1e-3, batch 8, random horizontal flips of the full frames (padded to 480x384) only.

Prints val mIoU, per-class IoU and training images/s of both, writes ``OUT/results.json`` and a
side-by-side overlay PNG of a few val frames (image / ground truth / segkit / plain).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # run from a checkout without installing

CLASSES = (
    "sky",
    "building",
    "pole",
    "road",
    "pavement",
    "tree",
    "sign_symbol",
    "fence",
    "car",
    "pedestrian",
    "bicyclist",
)
THIN = ("pole", "sign_symbol", "pedestrian", "bicyclist")


# ----------------------------------------------------------------------------------------- segkit side
class _BudgetSpent(Exception):
    """Raised from a callback when the wall-clock budget is used up (ends ``fit`` mid-epoch)."""


def _segkit_worker(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    from segkit.config import load_config
    from segkit.engine import Trainer
    from segkit.engine.callbacks import Callback
    from segkit.engine.optim import build_optimizer

    budget = args.minutes * 60.0
    overrides = [f"data.root={args.root}", f"train.out_dir={out / 'segkit'}", "train.epochs=1000", *args.set]
    cfg = load_config(args.config, overrides)

    class BudgetTrainer(Trainer):
        """The poly schedule (with warm-up) on wall-clock progress instead of a step count."""

        def configure_optimizers(self) -> tuple[torch.optim.Optimizer, Any]:
            params = [p for p in self.model.parameters() if p.requires_grad]
            optimizer = build_optimizer(self.optimizer_name, params, self.lr, self.weight_decay)
            self.t0 = time.perf_counter()
            warmup, name = self.warmup_iters, self.scheduler_name

            def factor(i: int) -> float:
                warm = min(1.0, (i + 1) / warmup) if warmup > 0 else 1.0
                t = min(1.0, (time.perf_counter() - self.t0) / budget)
                return warm * ((1.0 - t) ** 0.9 if name == "poly" else 1.0)

            return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)

    class StopOnBudget(Callback):
        def on_train_batch_end(self, trainer: Trainer, outputs: dict[str, Any]) -> None:
            # The last batch of an epoch may be short (367 images).
            last = trainer.batches_done == trainer.batches_per_epoch
            size = len(trainer.train_data) - (trainer.batches_per_epoch - 1) * trainer.batch_size if last else None
            trainer.images_seen = getattr(trainer, "images_seen", 0) + (size or trainer.batch_size)  # type: ignore[attr-defined]
            if time.perf_counter() - trainer.t0 >= budget:  # type: ignore[attr-defined]
                raise _BudgetSpent

    trainer = BudgetTrainer.from_config(cfg, callbacks=[StopOnBudget()], log_every=50)
    trainer.val_data = None  # validate once, at the end
    try:
        trainer.fit()
    except _BudgetSpent:
        pass
    train_s = time.perf_counter() - trainer.t0  # type: ignore[attr-defined]
    ckpt = trainer.save_checkpoint(out / "segkit" / "final.pt")
    steps, images = trainer.global_step, trainer.images_seen  # type: ignore[attr-defined]
    del trainer
    result, preds = _evaluate_like_cli(ckpt, args.root, args.frames)
    np.save(out / "segkit_frames.npy", preds)
    return {**result, "steps": steps, "train_images": images, "train_s": train_s, "images_per_s": images / train_s,
            "checkpoint": str(ckpt), "config": str(args.config)}  # fmt: skip


def _evaluate_like_cli(ckpt_path: Path, root: str, frames: list[int]) -> tuple[dict[str, Any], np.ndarray]:
    """Evaluate a checkpoint with the code of ``segkit evaluate`` (segkit/cli.py ``_cmd_evaluate``)."""
    from segkit.checkpoint import load_checkpoint, load_state_dict_checked
    from segkit.config import apply_overrides, config_from_dict
    from segkit.datasets import build_dataset
    from segkit.engine import Trainer
    from segkit.models import build_model

    ckpt = load_checkpoint(ckpt_path)
    cfg = config_from_dict(apply_overrides(ckpt["config"], [f"data.root={root}"]))
    data = build_dataset(cfg.data.name, **cfg.data.split_params("val"))  # type: ignore[arg-type]
    model_kwargs = dict(cfg.model.params)
    model_kwargs.setdefault("num_classes", getattr(data, "num_classes", None))
    model = build_model(cfg.model.name, **model_kwargs)
    load_state_dict_checked(model, ckpt["model"], source=str(ckpt_path))
    trainer = Trainer(model, val_data=data, batch_size=cfg.train.batch_size, device=cfg.train.device,
                      workers=cfg.train.workers, amp=cfg.train.amp, out_dir=cfg.train.out_dir)  # fmt: skip
    start = time.perf_counter()
    metrics = trainer.validate()
    eval_s = time.perf_counter() - start
    print(trainer.last_confusion.table(), flush=True)
    predictor = trainer.predictor()
    preds = np.stack([predictor.predict(data[i]["image"][None])[0].cpu().numpy().astype(np.uint8) for i in frames])
    return {"miou": metrics["miou"], "iou": metrics["iou"], "pixel_accuracy": metrics["pixel_accuracy"],
            "eval_s": eval_s}, preds  # fmt: skip


# ----------------------------------------------------------------------------------------- plain side
def _read_pair(root: Path, split: str, name: str) -> tuple[np.ndarray, np.ndarray]:
    image = cv2.cvtColor(cv2.imread(str(root / split / name), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    label = cv2.imread(str(root / f"{split}annot" / name), cv2.IMREAD_UNCHANGED).astype(np.int64)
    label[label == 11] = 255  # void
    return image, label


def _names(root: Path, split: str) -> list[str]:
    """File names in the order of ``{split}.txt`` (matched by name, as the camvid loader does), else sorted."""
    listing = root / f"{split}.txt"
    if listing.is_file():
        return [Path(line.split()[0]).name for line in listing.read_text().splitlines() if line.strip()]
    return sorted(p.name for p in (root / split).glob("*.png"))


def _to_tensor(image: np.ndarray) -> torch.Tensor:
    mean = np.asarray((0.485, 0.456, 0.406), np.float32)
    std = np.asarray((0.229, 0.224, 0.225), np.float32)
    x = (image.astype(np.float32) / 255.0 - mean) / std
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))


class _PlainData(torch.utils.data.Dataset):
    """Full frames, random horizontal flip, padded 480x360 -> 480x384 (label padding = ignore)."""

    def __init__(self, root: Path, split: str) -> None:
        self.root, self.split, self.names = root, split, _names(root, split)

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, label = _read_pair(self.root, self.split, self.names[i])
        if np.random.rand() < 0.5:
            image, label = image[:, ::-1], label[:, ::-1]
        x, y = _to_tensor(image), torch.from_numpy(np.ascontiguousarray(label))
        ph, pw = (-x.shape[1]) % 32, (-x.shape[2]) % 32
        return torch.nn.functional.pad(x, (0, pw, 0, ph)), torch.nn.functional.pad(y, (0, pw, 0, ph), value=255)


def _plain_worker(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    import segmentation_models_pytorch as smp

    from segkit.metrics.confusion import ConfusionMatrix

    torch.manual_seed(0)
    np.random.seed(0)
    root = Path(args.root)
    model = smp.Unet(encoder_name=args.plain_encoder, encoder_weights=None, classes=len(CLASSES))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loader = torch.utils.data.DataLoader(_PlainData(root, "train"), batch_size=8, shuffle=True, drop_last=True)
    budget, steps, images = args.minutes * 60.0, 0, 0
    t0 = time.perf_counter()
    model.train()
    while time.perf_counter() - t0 < budget:
        for x, y in loader:
            loss = torch.nn.functional.cross_entropy(model(x), y, ignore_index=255)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            steps, images = steps + 1, images + len(x)
            if steps % 50 == 0:
                print(f"plain: step {steps} loss {loss.item():.4f} {time.perf_counter() - t0:.0f}s", flush=True)
            if time.perf_counter() - t0 >= budget:
                break
    train_s = time.perf_counter() - t0

    model.eval()
    cm = ConfusionMatrix(len(CLASSES), 255, class_names=CLASSES)
    names, preds = _names(root, "val"), {}
    start = time.perf_counter()
    with torch.no_grad():
        for i, name in enumerate(names):
            image, label = _read_pair(root, "val", name)
            x = _to_tensor(image)[None]
            h, w = x.shape[2:]
            x = torch.nn.functional.pad(x, (0, (-w) % 32, 0, (-h) % 32))
            pred = model(x)[:, :, :h, :w].argmax(1)
            cm.update(pred, torch.from_numpy(label)[None])
            if i in args.frames:
                preds[i] = pred[0].numpy().astype(np.uint8)
    eval_s = time.perf_counter() - start
    print(cm.table(), flush=True)
    r = cm.compute()
    np.save(out / "plain_frames.npy", np.stack([preds[i] for i in args.frames]))
    return {"miou": r["miou"], "iou": r["iou"], "pixel_accuracy": r["pixel_accuracy"], "eval_s": eval_s,
            "steps": steps, "train_images": images, "train_s": train_s, "images_per_s": images / train_s}  # fmt: skip


# ----------------------------------------------------------------------------------------- report
def _overlay_png(root: Path, frames: list[int], out: Path, path: Path) -> None:
    """Rows of (image | ground truth | segkit | plain) at half resolution, with column titles."""
    from segkit.datasets.camvid import CAMVID_PALETTE
    from segkit.viz.overlay import colorize

    names = _names(root, "val")
    seg, plain = np.load(out / "segkit_frames.npy"), np.load(out / "plain_frames.npy")
    rows = []
    for k, i in enumerate(frames):
        image, label = _read_pair(root, "val", names[i])
        tiles = [image] + [colorize(m, CAMVID_PALETTE) for m in (label, seg[k], plain[k])]
        rows.append(np.concatenate([cv2.resize(t, (240, 180), interpolation=cv2.INTER_AREA) for t in tiles], 1))
    header = np.full((24, rows[0].shape[1], 3), 255, np.uint8)
    for c, title in enumerate(("image", "ground truth (white: void)", "segkit", "plain loop")):
        cv2.putText(header, title, (c * 240 + 6, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    grid = np.concatenate([header, *rows], 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])


def _report(results: dict[str, Any], args: argparse.Namespace, load: tuple[list[float], list[float]]) -> str:
    s, p = results["segkit"], results["plain"]
    lines = [
        f"CamVid val (101 frames, full 480x360), {args.minutes:g} min wall-clock training each, run concurrently,",
        f"each process pinned to 1 thread; load average (1/5/15 min) at start {load[0]}, at end {load[1]}",
        "",
        "| | segkit | plain loop |",
        "|---|---:|---:|",
        f"| recipe | {Path(s['config']).name} | smp.Unet {args.plain_encoder}, CE, AdamW 1e-3 const, flips, batch 8 |",
        f"| val mIoU | **{s['miou']:.4f}** | {p['miou']:.4f} |",
        f"| pixel accuracy | {s['pixel_accuracy']:.4f} | {p['pixel_accuracy']:.4f} |",
        f"| training images/s | {s['images_per_s']:.2f} | {p['images_per_s']:.2f} |",
        f"| optimizer steps / images seen | {s['steps']} / {s['train_images']} | {p['steps']} / {p['train_images']} |",
        "",
        "| class | segkit IoU | plain IoU | difference |",
        "|---|---:|---:|---:|",
    ]
    for name, a, b in zip(CLASSES, s["iou"], p["iou"]):
        mark = " (thin)" if name in THIN else ""
        lines.append(f"| {name}{mark} | {a:.4f} | {b:.4f} | {a - b:+.4f} |")
    lines.append(f"| **mean** | **{s['miou']:.4f}** | **{p['miou']:.4f}** | **{s['miou'] - p['miou']:+.4f}** |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=os.environ.get("SEGKIT_CAMVID"), help="CamVid folder (or $SEGKIT_CAMVID)")
    parser.add_argument("--minutes", type=float, default=20.0, help="wall-clock training budget of each side")
    parser.add_argument("--config", default=str(REPO / "configs" / "camvid_unet.yaml"), help="segkit's recipe")
    parser.add_argument("--set", action="append", default=[], help="override of the segkit config (KEY=VALUE)")
    parser.add_argument("--plain-encoder", default="resnet18", help="encoder of the plain loop's smp.Unet")
    parser.add_argument("--out", default="runs/bench_camvid", help="output folder")
    parser.add_argument("--png", default=None, help="overlay PNG path (default OUT/camvid_overlay.png)")
    parser.add_argument("--frames", default="5,50,95", help="val frame indices shown in the overlay")
    parser.add_argument("--worker", choices=("segkit", "plain"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not args.root:
        parser.error("give --root PATH or set SEGKIT_CAMVID")
    args.frames = [int(v) for v in str(args.frames).split(",")]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    if args.worker:
        torch.set_num_threads(1)
        cv2.setNumThreads(1)
        result = (_segkit_worker if args.worker == "segkit" else _plain_worker)(args, out)
        (out / f"{args.worker}.json").write_text(json.dumps(result, indent=1))
        return 0

    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "NO_ALBUMENTATIONS_UPDATE": "1"}
    load_start = [round(v, 2) for v in os.getloadavg()]
    print(f"camvid bench: {args.minutes:g} min each, segkit ({args.config}) and plain loop run concurrently, "
          f"1 thread each; load average {load_start}", flush=True)  # fmt: skip
    procs = {}
    for name in ("segkit", "plain"):
        cmd = [sys.executable, __file__, "--worker", name, "--root", args.root, "--minutes", str(args.minutes),
               "--config", args.config, "--out", str(out), "--frames", ",".join(map(str, args.frames)),
               "--plain-encoder", args.plain_encoder] + [f"--set={s}" for s in args.set]  # fmt: skip
        log = open(out / f"{name}.log", "w")  # noqa: SIM115 - closed after the process ends
        procs[name] = (subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT), log)
    failed = []
    for name, (proc, log) in procs.items():
        if proc.wait() != 0:
            failed.append(name)
        log.close()
    if failed:
        print(f"camvid bench: worker(s) {failed} failed; see {out}/<name>.log", file=sys.stderr)
        return 1
    load_end = [round(v, 2) for v in os.getloadavg()]
    results = {name: json.loads((out / f"{name}.json").read_text()) for name in ("segkit", "plain")}
    report = _report(results, args, (load_start, load_end))
    png = Path(args.png) if args.png else out / "camvid_overlay.png"
    _overlay_png(Path(args.root), args.frames, out, png)
    (out / "results.json").write_text(json.dumps({**results, "load": [load_start, load_end]}, indent=1))
    (out / "report.md").write_text(report + "\n")
    print(report)
    print(f"\noverlay: {png}\nreproduce segkit's mIoU: OMP_NUM_THREADS=1 segkit evaluate --checkpoint "
          f"{results['segkit']['checkpoint']} --set data.root={args.root}")  # fmt: skip
    if not all(math.isfinite(r["miou"]) for r in results.values()):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
