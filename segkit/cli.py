"""Command line: ``segkit train | evaluate | predict | list``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

__all__ = ["main"]

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


def _cmd_train(args: argparse.Namespace) -> int:
    from segkit.config import load_config
    from segkit.engine import Trainer

    cfg = load_config(args.config, args.set)
    trainer = Trainer.from_config(cfg)
    print(f"segkit train: {cfg.model.name} on {cfg.data.name}, {cfg.train.epochs} epochs, run folder {trainer.out_dir}")
    metrics = trainer.fit(resume=args.resume)
    best = next((cb.best for cb in trainer.callbacks if hasattr(cb, "best") and cb.best is not None), None)
    if "val/miou" in metrics:
        print(f"final val mIoU {metrics['val/miou']:.4f}" + (f" (best {best:.4f})" if best is not None else ""))
    print(f"checkpoints: {trainer.out_dir / 'last.pt'}, {trainer.out_dir / 'best.pt'}")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from segkit.config import config_from_dict, load_config
    from segkit.datasets import build_dataset
    from segkit.engine import Trainer
    from segkit.engine.checkpoint import load_checkpoint, load_state_dict_checked

    ckpt = load_checkpoint(args.checkpoint)
    if args.config:
        cfg = load_config(args.config, args.set)
    elif ckpt.get("config"):
        from segkit.config import apply_overrides

        cfg = config_from_dict(apply_overrides(ckpt["config"], args.set))
    else:
        print(f"segkit evaluate: {args.checkpoint} holds no config; pass --config", file=sys.stderr)
        return 2
    split = cfg.data.split_params(args.split)
    if split is None:
        print(f"segkit evaluate: the config has no {args.split!r} data block", file=sys.stderr)
        return 2
    data = build_dataset(cfg.data.name, **split)
    model_kwargs = dict(cfg.model.params)
    model_kwargs.setdefault("num_classes", getattr(data, "num_classes", None))
    from segkit.models import build_model

    model = build_model(cfg.model.name, **model_kwargs)
    load_state_dict_checked(model, ckpt["model"], source=str(args.checkpoint))
    trainer = Trainer(
        model,
        val_data=data,
        batch_size=cfg.train.batch_size,
        device=cfg.train.device,
        workers=cfg.train.workers,
        amp=cfg.train.amp,
        out_dir=cfg.train.out_dir,
    )
    trainer.validate()
    print(f"segkit evaluate: {args.checkpoint} on {cfg.data.name} ({args.split}, {len(data)} images)")  # type: ignore[arg-type]
    print(trainer.last_confusion.table())
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    import numpy as np
    from PIL import Image

    from segkit.inference import Predictor, read_image
    from segkit.viz import overlay_mask

    predictor = Predictor.from_checkpoint(args.checkpoint, device=args.device)
    paths: list[Path] = []
    for item in args.images:
        p = Path(item)
        if p.is_dir():
            paths.extend(sorted(q for q in p.iterdir() if q.suffix.lower() in IMAGE_SUFFIXES))
        else:
            paths.append(p)
    if not paths:
        print("segkit predict: no images found", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    palette = predictor.palette if predictor.palette is not None else _fallback_palette()
    failed = 0
    for path in paths:
        try:
            image = read_image(path)
        except (OSError, ValueError) as exc:
            failed += 1
            print(f"segkit predict: skipped {path}: {exc}", file=sys.stderr)
            continue
        mask = np.asarray(predictor.predict(image))
        Image.fromarray(overlay_mask(image, mask, palette, alpha=args.alpha)).save(out / f"{path.stem}_overlay.png")
        raw = Image.fromarray(mask.astype(np.uint8), mode="P")
        raw.putpalette(np.asarray(palette, dtype=np.uint8).reshape(-1).tolist())
        raw.save(out / f"{path.stem}_mask.png")
    print(f"segkit predict: wrote {len(paths) - failed} overlays and masks to {out}" + (f" ({failed} skipped)" if failed else ""))
    return 1 if failed == len(paths) else 0


def _fallback_palette():  # type: ignore[no-untyped-def]
    from segkit.datasets.base import default_palette

    return default_palette(256)


def _cmd_list(args: argparse.Namespace) -> int:
    from segkit.datasets import DATASETS
    from segkit.losses import LOSSES
    from segkit.models import MODELS
    from segkit.tracking import TRACKERS

    registry = {"models": MODELS, "losses": LOSSES, "datasets": DATASETS, "trackers": TRACKERS}[args.what]
    names = registry.names(args.pattern)
    width = max((len(n) for n in names), default=4)
    for name in names:
        doc = (registry.get(name).__doc__ or "").strip().splitlines()
        print(f"{name:<{width}}  {doc[0] if doc else ''}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Return the ``segkit`` argument parser."""
    parser = argparse.ArgumentParser(prog="segkit", description="Train, evaluate and run segmentation models.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train from a YAML config")
    p.add_argument("--config", required=True, help="YAML config file")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override, e.g. train.lr=0.01")
    p.add_argument("--resume", default=None, metavar="last|PATH",
                   help="continue an interrupted run: 'last' (the run folder's last.pt) or a checkpoint path")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("evaluate", help="print the metrics table of a checkpoint")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--config", help="YAML config (default: the one stored in the checkpoint)")
    p.add_argument("--split", default="val", choices=["train", "val"])
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("predict", help="write colour overlays and masks for images")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("images", nargs="+", help="image files or folders")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--alpha", type=float, default=0.5, help="overlay opacity")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("list", help="list registered models, losses, datasets or trackers")
    p.add_argument("what", choices=["models", "losses", "datasets", "trackers"])
    p.add_argument("pattern", nargs="?", default=None, help="glob filter, e.g. 'unet*'")
    p.set_defaults(func=_cmd_list)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``segkit`` command; returns the exit status.

    Errors a user can fix (bad config, missing file, unreadable checkpoint) print one line, exit 2.
    """
    args = build_parser().parse_args(argv)
    from segkit.config import ConfigError
    from segkit.engine.checkpoint import CheckpointError
    from segkit.registry import UnknownNameError

    try:
        return int(args.func(args))
    except (ConfigError, CheckpointError, FileNotFoundError, UnknownNameError) as exc:
        print(f"segkit {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
