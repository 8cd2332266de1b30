"""Command line: ``segkit train | evaluate | predict | report | export | list | inspect | runs export``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["main"]

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


def _cmd_train(args: argparse.Namespace) -> int:
    from segkit.config import apply_overrides, config_from_dict, load_config
    from segkit.distributed import shutdown_distributed
    from segkit.engine import Trainer

    if args.data is not None:
        cfg = config_from_dict(apply_overrides(_folder_config(args), args.set))
        print(f"segkit train: {_initial_weights(cfg.model.params)}")  # after --set: model.weights= counts
    else:
        cfg = load_config(args.config, args.set)
    try:
        trainer = Trainer.from_config(cfg)
        _train_and_report(trainer, cfg, args)
    finally:
        shutdown_distributed()  # under torchrun: a group left to interpreter exit can abort in gloo's teardown
    return 0


def _train_and_report(trainer: Any, cfg: Any, args: argparse.Namespace) -> None:
    """Fit ``trainer`` and print where its results are; under torchrun only rank 0 prints and writes the report."""
    from segkit.config import save_config

    main_process = trainer.is_main_process
    if main_process and args.data is not None and trainer.config is not None:
        trainer.out_dir.mkdir(parents=True, exist_ok=True)
        save_config(trainer.config, trainer.out_dir / "config.yaml")  # rerun with --config
    if main_process:
        print(f"segkit train: {cfg.model.name} on {cfg.data.name}, {cfg.train.epochs} epochs, "
              f"run folder {trainer.out_dir}")  # fmt: skip
    metrics = trainer.fit(resume=args.resume)
    table = _best_table(trainer, metrics)  # on every rank: a validation under torchrun is collective
    if not main_process:
        return
    best = next((cb.best for cb in trainer.callbacks if hasattr(cb, "best") and cb.best is not None), None)
    if "val/miou" in metrics:
        print(f"final val mIoU {metrics['val/miou']:.4f}" + (f" (best {best:.4f})" if best is not None else ""))
    if table:
        print(table)
    print(f"checkpoints: {trainer.out_dir / 'last.pt'}, {trainer.out_dir / 'best.pt'}")
    if args.data is not None and trainer.val_data is not None and (trainer.out_dir / "best.pt").is_file():
        from segkit.viz.report import write_report

        paths = write_report(trainer.out_dir, device=cfg.train.device)
        print(f"report: {', '.join(str(p) for p in paths)}")


def _best_table(trainer: Any, metrics: dict[str, Any]) -> str | None:
    """The per-class table (``segkit evaluate``'s) of the best checkpoint on the validation data, with a title.

    The last validation's confusion matrix when the last epoch is the best one; else ``best.pt``'s weights (EMA
    when kept: those chose it) are loaded into ``eval_model`` and validated once more. Under torchrun that
    reload is not done (every rank would have to read the file): the last epoch's table is printed, said so.
    None for instance models, runs without validation and runs that wrote no ``best.pt``.
    """
    from segkit.engine.callbacks import ModelCheckpoint

    keeper = next((cb for cb in trainer.callbacks if isinstance(cb, ModelCheckpoint)), None)
    if trainer.task == "instance" or trainer.val_data is None or keeper is None or keeper.best is None:
        return None
    best_path = trainer.out_dir / "best.pt"
    title = f"per-class scores of {best_path} (best {keeper.monitor} {keeper.best:.4f}) on the validation data:"
    confusion = getattr(trainer, "last_confusion", None)
    if confusion is None or metrics.get(keeper.monitor) != keeper.best:
        if trainer.dist.enabled:
            if confusion is None:
                return None
            return f"per-class scores of the last epoch (not best.pt: segkit evaluate --checkpoint {best_path}):\n" + (
                confusion.table()
            )
        from segkit.checkpoint import load_checkpoint, model_weights

        trainer.eval_model.load_state_dict(model_weights(load_checkpoint(best_path), source=str(best_path)))
        trainer.validate()
        confusion = trainer.last_confusion
    return f"{title}\n{confusion.table()}"


def _initial_weights(model: dict[str, Any]) -> str:
    """What a run starts from, read from the model block after the ``--set`` overrides."""
    if model.get("weights"):
        return (
            f"initial weights from {model['weights']} (every tensor whose name and shape fit; the load is "
            "confirmed below, with any new head)"
        )
    encoder = model.get("encoder_weights")
    if encoder:
        return f"encoder weights {encoder}; the decoder and head start from random weights"
    return "random initial weights; --encoder-weights imagenet starts from ImageNet (downloads once)"


def _folder_config(args: argparse.Namespace) -> dict[str, Any]:
    """The config of ``segkit train --data DIR``: a U-Net on the folder, crops at ``--image-size``, flips.

    Splits: ``DIR/train`` and ``DIR/val`` subfolders, or ``DIR/train.txt`` and ``DIR/val.txt``, else a
    seeded 90/10 split of every image written as lists into the run folder (so the config reruns as is).
    """
    import random

    root = Path(args.data)
    out = Path(args.out or f"runs/{root.resolve().name or 'folder'}")
    from segkit.config import apply_overrides

    data = apply_overrides({"data": {}}, args.set).get("data")
    given = {k: data.get(k) for k in ("mask_suffix", "image_dir", "mask_dir")} if isinstance(data, dict) else {}
    # train/ + val/ are split folders unless a given image_dir is not inside them (train/ + trainannot/ + val/ ...).
    inside = [str(v) for k in ("image_dir", "mask_dir") if (v := given.get(k)) is not None]
    if all((root / s).is_dir() and all((root / s / d).is_dir() for d in inside) for s in ("train", "val")) or all(
        (root / f"{s}.txt").is_file() for s in ("train", "val")
    ):
        splits: dict[str, str] = {"train": "train", "val": "val"}
    else:
        from segkit.datasets.folder_layout import find_layout

        # File names only: the masks are decoded by the datasets, once the --set overrides (mask_values=,
        # palette=, the remedies the encoding errors give) are applied.
        names = [p.name for p in find_layout(root, None, **given).images]
        if len(names) < 2:
            raise FileNotFoundError(f"--data {root}: {len(names)} image(s); a training and a validation image at least")
        random.Random(args.seed).shuffle(names)
        n_val = max(1, round(0.1 * len(names)))
        (out / "splits").mkdir(parents=True, exist_ok=True)
        splits = {}
        for split, part in (("val", names[:n_val]), ("train", names[n_val:])):
            listing = (out / "splits" / f"{split}.txt").resolve()
            listing.write_text("\n".join(sorted(part)) + "\n")
            splits[split] = str(listing)
        print(f"segkit train: no train/val split in {root}; wrote a seeded split to {out / 'splits'} "
              f"({len(names) - n_val} train, {n_val} val)")  # fmt: skip
    crop = {"crop_size": args.image_size, "scale": [0.5, 2.0], "hflip": 0.5}
    return {
        "model": {"name": args.model, "encoder": args.encoder, "encoder_weights": args.encoder_weights},
        "loss": {"name": "ce+dice"},
        "data": {
            "name": "folder",
            "root": str(root.resolve()),
            "train": {"split": splits["train"], "transforms": crop},
            "val": {"split": splits["val"]},
        },
        "train": {
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "seed": args.seed,
            "out_dir": str(out),
        },  # fmt: skip
    }


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from segkit.checkpoint import load_checkpoint
    from segkit.config import config_from_dict, load_config
    from segkit.datasets import build_dataset
    from segkit.models.from_checkpoint import model_from_checkpoint

    ckpt = load_checkpoint(args.checkpoint)
    if args.config:
        cfg = load_config(args.config, args.set)
    elif ckpt.get("config"):
        from segkit.config import apply_overrides

        cfg = config_from_dict(apply_overrides(ckpt["config"], args.set))
    else:
        print(f"segkit evaluate: {args.checkpoint} holds no config; pass --config", file=sys.stderr)
        return 2
    split = _evaluation_split(cfg.data, args.split)
    if split is None:
        print(f"segkit evaluate: the config has no {args.split!r} data block", file=sys.stderr)
        return 2
    data = build_dataset(cfg.data.name, **split)
    if ckpt.get("normalization") is not None:  # the model's statistics, whatever the config computes
        from segkit.datasets.normalization import Normalization, share_normalization

        try:
            share_normalization(
                data, Normalization.coerce(ckpt["normalization"]), f"{args.split} data", args.checkpoint
            )
        except ValueError as exc:
            print(f"segkit evaluate: {exc}", file=sys.stderr)
            return 2
    # The one model-from-checkpoint path (also Predictor's and export's): the checkpoint's own model config,
    # no download, and the weights that chose best.pt (EMA when kept).
    from segkit.config import config_to_dict
    from segkit.datasets import dataset_info

    info = dataset_info(data)
    given = {"num_classes": info.num_classes, **config_to_dict(cfg)["model"]}
    model = model_from_checkpoint(args.checkpoint, ckpt, given)
    from segkit.engine.trainer import resolve_task

    task = resolve_task(ckpt.get("task") or cfg.train.task, model)
    result, evaluator = _score(model, data, task, info, cfg.train)
    print(f"segkit evaluate: {args.checkpoint} on {cfg.data.name} ({args.split}, {len(data)} images)")  # type: ignore[arg-type]
    print(_coco_table(result) if task == "instance" else evaluator.table())
    return 0


def _score(model: Any, data: Any, task: str, info: Any, train: Any) -> tuple[dict[str, Any], Any]:
    """``segkit.metrics.evaluate`` of ``model`` on ``data`` with the config's device, precision, batch size and
    workers: the scoring ``Trainer.validate`` does, without a Trainer."""
    import functools
    from contextlib import nullcontext

    import torch
    from torch.utils.data import DataLoader

    from segkit.datasets import collate_instances, collate_semantic
    from segkit.engine.inputs import resolve_device
    from segkit.engine.precision import resolve_amp
    from segkit.metrics import evaluate, predict_classes

    if info.num_classes is None:
        raise ValueError("segkit evaluate: the dataset has no num_classes; set it in the data block")
    device = resolve_device(train.device)
    amp, _ = resolve_amp(train.amp, device)
    collate = functools.partial(
        collate_instances if task == "instance" else collate_semantic, ignore_index=info.ignore_index
    )
    loader = DataLoader(data, train.batch_size, shuffle=False, num_workers=train.workers, collate_fn=collate)
    model = model.to(device)

    def predict(batch: dict[str, Any]) -> Any:
        dtype = torch.bfloat16 if amp == "bf16" else torch.float16
        with torch.autocast(device.type, dtype=dtype) if amp else nullcontext():
            return model(batch["image"]) if task == "instance" else predict_classes(model, batch)

    return evaluate(model, loader, num_classes=info.num_classes, task=task, ignore_index=info.ignore_index,
                    class_names=info.class_names, device=device, predict=predict)  # fmt: skip


def _evaluation_split(data: Any, split: str) -> dict[str, Any] | None:
    """The dataset arguments of ``split`` with the validation block's transforms: any split (train too) is
    scored as validation sees images, deterministically, never on random augmented crops."""
    params = data.split_params(split)
    if params is None or split == "val":
        return params
    params.pop("transforms", None)
    val = data.split_params("val") or dict(data.params)
    if val.get("transforms") is not None:
        params["transforms"] = val["transforms"]
    return params


def _coco_table(result: dict[str, Any]) -> str:
    """COCO AP as a table: a row per IoU type (bbox, segm), columns AP, AP50, AP75 and per object size
    (nan: no ground-truth object of that size)."""
    columns = {"AP": "ap", "AP50": "ap50", "AP75": "ap75", "APs": "ap_small", "APm": "ap_medium", "APl": "ap_large"}
    lines = [f"{'':<5}" + "".join(f"{c:>8}" for c in columns)]
    for kind in ("bbox", "segm"):
        if f"{kind}_ap" in result:
            lines.append(f"{kind:<5}" + "".join(f"{result[f'{kind}_{key}']:8.4f}" for key in columns.values()))
    return "\n".join(lines)


def _cmd_predict(args: argparse.Namespace) -> int:
    import json

    import numpy as np
    from PIL import Image
    from tqdm import tqdm

    from segkit.inference import OnnxPredictor, Predictor, read_image, save_mask
    from segkit.inference.mask_writer import describe_mask_format
    from segkit.viz import draw_instances, overlay_mask
    from segkit.viz.semantic import display_rgb

    predictor: Any
    try:
        paths = _predict_paths(args)
        if args.onnx:  # the exported file, prepared from its own metadata exactly as the checkpoint path is
            predictor = OnnxPredictor(args.onnx, window=args.window, overlap=args.overlap, tta=args.tta)
    except ValueError as exc:  # an ambiguous list entry, an instance ONNX file: one line
        print(f"segkit predict: error: {exc}", file=sys.stderr)
        return 2
    if not paths:
        print("segkit predict: no images found (give image files, folders or --list)", file=sys.stderr)
        return 2
    if not args.onnx:
        predictor = Predictor.from_checkpoint(
            args.checkpoint,
            device=args.device,
            window=args.window,
            overlap=args.overlap,
            tta=args.tta,
            min_confidence=args.min_confidence,
        )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    palette = predictor.palette if predictor.palette is not None else _fallback_palette()
    # Masks in the training masks' own encoding (0/255, their palette or colours); instances: label maps.
    index = args.index_masks or predictor.task == "instance"
    mask_format = getattr(predictor, "mask_format", None)
    failed = 0
    for path in tqdm(paths, desc="segkit predict", unit="image", disable=args.quiet):
        try:
            image = read_image(path)
        except (OSError, ValueError) as exc:
            failed += 1
            tqdm.write(f"segkit predict: skipped {path}: {exc}", file=sys.stderr)
            continue
        result = predictor.predict(image)
        if predictor.task == "instance":
            overlay = draw_instances(image, result, alpha=args.alpha)
            mask = result.to_label_map()
            (out / f"{path.stem}_instances.json").write_text(json.dumps(result.to_dict(), indent=1))
        else:
            mask = np.asarray(result)
            overlay = overlay_mask(display_rgb(image), mask, palette, alpha=args.alpha)  # multi-band: 3 bands shown
        Image.fromarray(overlay).save(out / f"{path.stem}_overlay.png")
        save_mask(out / f"{path.stem}_mask.png", mask, mask_format, palette, index=index)
    print(
        f"segkit predict: wrote {len(paths) - failed} overlays and masks to {out}"
        + (f" ({failed} skipped)" if failed else "")
        + f"; masks as {describe_mask_format(mask_format, index)}"
        + ("" if index or mask_format is None else " (--index-masks for class indices)")
    )
    return 1 if failed == len(paths) else 0


def _predict_paths(args: argparse.Namespace) -> list[Path]:
    """The images of ``segkit predict``: files, folders (their images), and the images ``--list`` names."""
    from segkit.inference import read_image_list

    paths: list[Path] = []
    for item in args.images:
        p = Path(item)
        if p.is_dir():
            paths.extend(sorted(q for q in p.iterdir() if q.suffix.lower() in IMAGE_SUFFIXES))
        else:
            paths.append(p)
    if args.list:
        paths.extend(read_image_list(args.list, args.root))
    elif args.root:
        raise FileNotFoundError("--root names the folder of a --list's images; give --list too")
    return paths


def _cmd_report(args: argparse.Namespace) -> int:
    from segkit.viz.report import write_report

    paths = write_report(
        args.run_dir,
        args.out,
        checkpoint=args.checkpoint,
        num_worst=args.num_worst,
        max_images=args.max_images,
        device=args.device,
    )
    for p in paths:
        print(p)
    return 0


def _fallback_palette() -> Any:
    from segkit.datasets.base import default_palette

    return default_palette(256)


def _cmd_export(args: argparse.Namespace) -> int:
    from segkit.checkpoint import load_checkpoint
    from segkit.export import export_onnx, model_from_checkpoint
    from segkit.export_instance import export_instance_onnx, input_normalization, is_detector

    ckpt = load_checkpoint(args.checkpoint)
    model = model_from_checkpoint(args.checkpoint, ckpt)
    try:
        if is_detector(model):
            # The checkpoint's normalisation and names go into the file, so a runtime without segkit can
            # prepare images and name detections (docs/deploy.md).
            norm = input_normalization(model, ckpt.get("normalization"))
            names = ckpt.get("class_names") or getattr(model, "class_names", None)
            path = export_instance_onnx(
                model, args.out, tuple(args.size), normalization=ckpt.get("normalization"), class_names=names
            )
            io = (
                f"input image (3, H, W) of any size, (pixels - mean) / std with mean {_rounded(norm['mean'])} "
                f"std {_rounded(norm['std'])}; outputs boxes, labels, scores, masks"
            )
        else:
            # Everything a runtime without segkit needs rides in the file (docs/deploy.md, examples/onnx_semantic.py).
            path = export_onnx(
                model,
                args.out,
                tuple(args.size),
                in_channels=ckpt.get("in_channels"),
                normalization=ckpt.get("normalization"),
                class_names=ckpt.get("class_names"),
                palette=ckpt.get("palette"),
                ignore_index=int(ckpt.get("ignore_index", 255) or 255),
                mask_format=ckpt.get("mask_format"),
                input_size_resize=ckpt.get("input_size"),
            )
            io = _semantic_io(path)
    except ValueError as exc:  # a model or size ONNX cannot express: one line, not a traceback
        print(f"segkit export: error: {exc}", file=sys.stderr)
        return 2
    print(f"segkit export: wrote {path} ({io})")
    return 0


def _semantic_io(path: Path) -> str:
    """What the exported semantic file takes, from its metadata: one line for the user."""
    import json

    import onnx

    meta = {p.key: json.loads(p.value) for p in onnx.load(str(path), load_external_data=False).metadata_props}
    size = meta["segkit.graph_size"]
    hw = "H, W) of any size" if size is None else f"{size[0]}, {size[1]}) only"
    return (
        f"input image (N, {meta['segkit.in_channels']}, {hw}, (pixels - mean) / std with mean "
        f"{_rounded(meta['segkit.input_mean'])} std {_rounded(meta['segkit.input_std'])}; output logits "
        f"(N, {meta['segkit.num_classes']}, H, W); run it with examples/onnx_semantic.py or segkit predict --onnx"
    )


def _rounded(values: Sequence[float]) -> str:
    """``[123.675, 116.280, 103.530]``: statistics short enough for one line."""
    return "[" + ", ".join(f"{v:.3f}" for v in values) + "]"


def _registries() -> dict[str, Any]:
    from segkit.datasets import DATASETS
    from segkit.losses import LOSSES
    from segkit.models import MODELS
    from segkit.tracking import TRACKERS

    return {"models": MODELS, "losses": LOSSES, "datasets": DATASETS, "trackers": TRACKERS}


def registry_markdown() -> str:
    """Return the README table of every registered name: one row per family, names in backticks.

    Regenerate the README's table with ``segkit list --markdown``; a test fails when it is out of date.
    """
    lines = ["| family | names |", "|---|---|"]
    for family, registry in _registries().items():
        lines.append(f"| {family} | {', '.join(f'`{n}`' for n in registry.names())} |")
    return "\n".join(lines)


def _cmd_list(args: argparse.Namespace) -> int:
    if args.markdown:
        print(registry_markdown())
        return 0
    if args.what is None:
        print("segkit list: name a family (models, losses, datasets, trackers) or pass --markdown", file=sys.stderr)
        return 2
    registry = _registries()[args.what]
    names = registry.names(args.pattern)
    width = max((len(n) for n in names), default=4)
    for name in names:
        doc = (registry.get(name).__doc__ or "").strip().splitlines()
        print(f"{name:<{width}}  {doc[0] if doc else ''}")
    return 0


def _cmd_runs(args: argparse.Namespace) -> int:
    from segkit.tracking.base import MissingExtraError
    from segkit.tracking.export import ExportError, export_run

    try:
        record, destination = export_run(args.run, args.to, uri=args.uri, out=args.out, experiment=args.experiment)
    except (ExportError, MissingExtraError) as exc:
        print(f"segkit runs export: error: {exc}", file=sys.stderr)
        return 2
    print(
        f"segkit runs export: {len(record.metrics)} metric rows, {len(record.images)} images, "
        f"{'params' if record.params else 'no params'} from {args.run} -> {destination}"
    )
    return 0


def _cmd_inspect(args: argparse.Namespace) -> int:
    import yaml

    kwargs: dict[str, Any] = {"root": args.root}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key:
            print(f"segkit inspect: --set expects KEY=VALUE (e.g. ann_file=labels.json), got {item!r}", file=sys.stderr)
            return 2
        # "data.mask_values=..." as segkit train takes it (and the datasets' remedies print it) works here too.
        kwargs[key.removeprefix("data.")] = yaml.safe_load(value)
    splits: list[str | None] = [args.split]
    if args.split is None and args.dataset == "folder" and not {"image_dir", "mask_dir"} & set(kwargs):
        from segkit.datasets.folder_layout import split_folders

        # A folder of train/ + val/ subfolders: every image is every split's, each split in turn.
        splits = list(split_folders(args.root)) or [None]
    for split in splits:
        _inspect_split(args, kwargs if split is None else {**kwargs, "split": split}, split)
    return 0


def _inspect_split(args: argparse.Namespace, kwargs: dict[str, Any], split: str | None) -> None:
    from segkit.datasets import build_dataset
    from segkit.datasets.summary import label_stats, summary_text

    data = build_dataset(args.dataset, **kwargs)
    print(f"segkit inspect: {args.dataset} at {args.root}, {split or 'all images'}")
    instance = getattr(data, "task", None) == "instance"
    channels = None
    if hasattr(data, "load_raw"):
        from segkit.datasets.dataset_stats import channel_stats

        channels = channel_stats(data, max_images=args.max_images)
    if instance:
        # Instance datasets have no semantic mask: instances, crowd regions and sizes per class instead.
        from segkit.datasets.instance_summary import instance_stats, instance_summary_text

        print(instance_summary_text(data, instance_stats(data, args.max_images), markdown=args.markdown))
        if channels is not None:
            mean, std = channels
            print("per-channel mean: [" + ", ".join(f"{v:.3f}" for v in mean) + "]")
            print("per-channel std:  [" + ", ".join(f"{v:.3f}" for v in std) + "]")
    else:
        print(summary_text(data, label_stats(data, args.max_images), channels, markdown=args.markdown))
    if not args.no_picture and hasattr(data, "load_raw") and len(data):  # type: ignore[arg-type]
        picture = Path(args.picture or f"runs/inspect/{args.dataset}_{split or 'all'}.png")
        if args.picture and split is not None and split != args.split:  # one picture per split
            picture = picture.with_name(f"{picture.stem}_{split}{picture.suffix}")
        print(f"samples with their {'instances' if instance else 'masks'}: {_inspect_picture(data, picture)}")


def _inspect_picture(data: Any, path: Path, count: int = 8) -> Path:
    import numpy as np

    from segkit.datasets.subsample import evenly_spaced
    from segkit.viz.figures import save_figure
    from segkit.viz.semantic import plot_samples

    picks = evenly_spaced(len(data), count)
    samples = []
    instance = getattr(data, "task", None) == "instance"
    for i in picks:
        image, mask, inst = data.load_raw(int(i))
        if instance and isinstance(inst, dict):
            image = _drawn_instances(image, inst, getattr(data, "class_names", None))
            mask = np.zeros(image.shape[:2], np.uint8)  # the instances are drawn: nothing to overlay
        samples.append((image, mask, Path(data.item_path(int(i))).name))
    palette = getattr(data, "palette", None)
    if palette is None:
        palette = _fallback_palette()
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_figure(plot_samples(samples, palette, getattr(data, "class_names", None)), path)


def _drawn_instances(image: Any, inst: dict[str, Any], class_names: Any) -> Any:
    """The raw annotations of one instance sample drawn on its image (names, no scores; crowd regions included)."""
    import numpy as np

    from segkit.viz import draw_instances

    masks = [np.asarray(m) != 0 for m in inst["masks"]]
    keep = [i for i, m in enumerate(masks) if m.any()]
    h, w = image.shape[:2]
    stack = np.stack([masks[i] for i in keep]) if keep else np.zeros((0, h, w), bool)
    ys, xs = np.asarray(stack.any(2)), np.asarray(stack.any(1))
    boxes = np.asarray(
        [[x.argmax(), y.argmax(), w - x[::-1].argmax(), h - y[::-1].argmax()] for x, y in zip(xs, ys)], np.float32
    ).reshape(-1, 4)
    labels = np.asarray([int(inst["labels"][i]) for i in keep], np.int64)
    rgb = np.ascontiguousarray(np.asarray(image)[..., :3]).astype(np.uint8)
    target = {"boxes": boxes, "labels": labels, "masks": stack}
    return draw_instances(rgb, target, class_names, show_scores=False)


def build_parser() -> argparse.ArgumentParser:
    """Return the ``segkit`` argument parser."""
    parser = argparse.ArgumentParser(prog="segkit", description="Train, evaluate and run segmentation models.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train from a YAML config, or from a folder of images and masks (--data)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", help="YAML config file")
    source.add_argument("--data", metavar="DIR", help="a folder of images and masks (see docs/your_data.md)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override, e.g. train.lr=0.01")
    p.add_argument(
        "--resume",
        default=None,
        metavar="last|auto|PATH",
        help="continue an interrupted run: 'last' (the run folder's last.pt), 'auto' (last if the run folder "
        "holds a checkpoint, else start; for torchrun --max-restarts) or a checkpoint path",
    )
    folder = p.add_argument_group("with --data")
    folder.add_argument("--model", default="unet", help="registered model name (default unet)")
    folder.add_argument("--encoder", default="resnet34", help="smp/timm encoder (default resnet34)")
    folder.add_argument("--encoder-weights", default=None, help="null (random init, default) or imagenet")
    folder.add_argument("--epochs", type=int, default=20)
    folder.add_argument("--batch-size", type=int, default=8)
    folder.add_argument("--lr", type=float, default=1e-3)
    folder.add_argument("--image-size", type=int, default=256, help="side of the random training crops")
    folder.add_argument("--seed", type=int, default=0)
    folder.add_argument("--out", default=None, help="run folder (default runs/<folder name>)")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("evaluate", help="print the metrics table of a checkpoint")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--config", help="YAML config (default: the one stored in the checkpoint)")
    p.add_argument("--split", default="val", choices=["train", "val"])
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("predict", help="write colour overlays and masks for images")
    model_file = p.add_mutually_exclusive_group(required=True)
    model_file.add_argument("--checkpoint", help="a checkpoint (best.pt)")
    model_file.add_argument("--onnx", help="a semantic ONNX file from segkit export, run with onnxruntime")
    p.add_argument("images", nargs="*", help="image files or folders")
    p.add_argument("--list", help="a split list: one image path or stem per line (e.g. val.txt)")
    p.add_argument("--root", help="the folder --list's names are relative to (default: the list's folder)")
    p.add_argument(
        "--index-masks",
        action="store_true",
        help="write class indices (palette PNG) instead of the training masks' encoding (0/255, colours, ...)",
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--alpha", type=float, default=0.5, help="overlay opacity")
    p.add_argument("--device", default="auto")
    p.add_argument("--min-confidence", type=float, default=0.5, help="instance models: drop detections below")
    p.add_argument("--tta", action="store_true", help="average over a left-right flip (semantic models)")
    p.add_argument("--window", type=int, default=None, help="sliding-window side in pixels for large images")
    p.add_argument("--overlap", type=float, default=0.25, help="sliding-window overlap fraction")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("report", help="write curves, confusion matrix and worst images of a run as PNGs")
    p.add_argument("run_dir", help="the run folder (metrics.jsonl, best.pt, config.yaml)")
    p.add_argument("--out", default=None, help="output folder (default RUN_DIR/report)")
    p.add_argument("--checkpoint", default="best.pt", help="checkpoint file name in RUN_DIR")
    p.add_argument("--num-worst", type=int, default=6, help="rows of the worst-images grid")
    p.add_argument("--max-images", type=int, default=None, help="evaluate at most this many validation images")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("export", help="export a checkpoint's model to ONNX")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--out", required=True, help="output .onnx file")
    p.add_argument(
        "--size",
        type=int,
        nargs=2,
        default=[512, 512],
        metavar=("H", "W"),
        help="input size traced (instance models: any size runs, this is the example's)",
    )
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("list", help="list registered models, losses, datasets or trackers")
    p.add_argument("what", nargs="?", choices=["models", "losses", "datasets", "trackers"])
    p.add_argument("pattern", nargs="?", default=None, help="glob filter, e.g. 'unet*'")
    p.add_argument("--markdown", action="store_true", help="print the README table of all registries")
    p.set_defaults(func=_cmd_list)

    p = sub.add_parser("runs", help="work with recorded runs")
    runs = p.add_subparsers(dest="runs_command", required=True)
    p = runs.add_parser("export", help="replay a run folder or a Neptune offline run into TensorBoard or MLflow")
    p.add_argument("run", help="segkit run folder (metrics.jsonl) or .neptune/offline/run__... folder")
    p.add_argument("--to", required=True, choices=["tensorboard", "mlflow"])
    p.add_argument("--uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db)")
    p.add_argument("--out", help="TensorBoard log folder (default: runs/export/<run name>)")
    p.add_argument("--experiment", default="segkit", help="MLflow experiment name")
    p.set_defaults(func=_cmd_runs)
    p = sub.add_parser("inspect", help="sizes, label encoding, class shares and weights, channel statistics")
    p.add_argument("--dataset", required=True, help="registered dataset name, e.g. folder or camvid")
    p.add_argument("--root", required=True, help="dataset folder")
    p.add_argument(
        "--split",
        default=None,
        help="split name (default: every image for folder, each split in turn where it has train/ + val/ "
        "subfolders; else the dataset's default)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="another dataset keyword argument, e.g. image_dir=Training_Images mask_dir=Ground_Truth (folder), "
        "ann_file=labels.json image_dir=photos (coco); a data. prefix is accepted",
    )
    p.add_argument("--max-images", type=int, default=None, help="read at most this many images (evenly spaced)")
    p.add_argument("--markdown", action="store_true", help="the class table as Markdown")
    p.add_argument("--picture", default=None, help="PNG of samples with masks (default runs/inspect/NAME_SPLIT.png)")
    p.add_argument("--no-picture", action="store_true", help="do not write the PNG")
    p.set_defaults(func=_cmd_inspect)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``segkit`` command; returns the exit status.

    Errors a user can fix (bad config, missing file, unreadable checkpoint) print one line, exit 2.
    """
    args = build_parser().parse_args(argv)
    from segkit.checkpoint import CheckpointError
    from segkit.config import ConfigError
    from segkit.datasets.bad_samples import BadSampleError
    from segkit.registry import UnknownNameError

    try:
        return int(args.func(args))
    except (ConfigError, CheckpointError, BadSampleError, FileNotFoundError, UnknownNameError) as exc:
        print(f"segkit {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
