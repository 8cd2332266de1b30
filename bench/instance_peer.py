"""Instance segmentation against Ultralytics YOLO26n-seg (and YOLOv8n-seg) at equal CPU time, scored by pycocotools.

Usage: python bench/instance_peer.py [--minutes 10] [--install-peer] [--config configs/shapes_maskrcnn_fast.yaml]
       [--peer-model yolo26n-seg.yaml [--peer-model yolov8n-seg.yaml]] [--coco DIR] [--only segkit|yolo]
       [--write-results]

1. Writes the data once to ``--out``/data: the built-in ``shapes`` instance images of the config's ``data`` block
   (or, with ``--coco DIR``, a COCO-format folder such as coco_tiny, split into train and val) as PNG/JPEG files,
   the COCO-format ground truth (``annotations/instances_{train,val}.json``: RLE masks, the one ground truth both
   are scored against), and the YOLO polygon layout (``labels/{train,val}/*.txt``, ``data.yaml``).
2. Trains all concurrently, one thread each (``OMP_NUM_THREADS=1``, ``workers=0``), for ``--minutes`` of wall
   time: each ``--peer-model`` from scratch (default ``yolo26n-seg.yaml``; no weights, ``time=`` in hours,
   ``amp=False``, ``plots=False``, hub, telemetry and loggers off) in ``--peer-env`` (a venv under runs/;
   ``--install-peer`` creates it and pip-installs ``ultralytics`` there: AGPL-3.0, never a segkit dependency, never
   imported by segkit); segkit with ``segkit train --config ... --set train.max_minutes=M`` (or a fixed epoch count
   on a segkit without it). On 2 cores, two runs get a core each; a third peer model shares them (the CPU min
   column says what each got): the YOLOv8n-seg row of RESULTS comes from its own run.
3. Predicts the val images at their original size with each tool's best checkpoint (YOLO: ``conf=0.001``,
   ``retina_masks=True``; segkit: ``Predictor`` with score threshold 0.001), up to 100 detections per image,
   RLE-encodes the masks and scores both with pycocotools ``COCOeval`` on the same json.

Prints a table and, with ``--write-results``, writes its block into bench/RESULTS.md. The peer venv and the
one-thread runs are bench/_peer.py's (shared with bench/semantic_peer.py).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/_peer.py, also when loaded from a file by a test
from _peer import (  # noqa: E402
    PEER_PRELUDE,
    PEER_SPECS,
    ROOT,
    SEGKIT_MAIN,
    budget_train,
    launch,
    loads,
    machine,
    one_thread_env,
    peer_env,
    peer_label,
    peer_python,
    peer_version,
    run_info,
    segkit_epochs,
    wait_all,
    write_results,
    yolo_epochs,
)

DEFAULT_CONFIG = "configs/shapes_maskrcnn_fast.yaml"
DEFAULT_PEER = "yolo26n-seg.yaml"
MAX_DETS = 100

# -------------------------------------------------------------------------------------------------- data


def mask_to_polygon(mask: np.ndarray) -> np.ndarray:
    """One polygon ``(N, 2)`` (x, y pixel indices) tracing a binary mask, holes and separate parts included.

    YOLO's label format holds one polygon per instance. Outer contours and hole contours (a ring) are joined
    into one closed path by zero-width bridges between their nearest points (as Ultralytics joins COCO's
    multi-part polygons), so ``cv2.fillPoly`` of the result gives the mask back, holes left empty.
    """
    import cv2

    contours, _ = cv2.findContours(np.asarray(mask, np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    parts = [c.reshape(-1, 2).astype(np.float64) for c in sorted(contours, key=len, reverse=True) if len(c) >= 1]
    if not parts:
        return np.zeros((0, 2))
    path = parts[0]
    for part in parts[1:]:
        d = ((path[:, None, :] - part[None, :, :]) ** 2).sum(-1)
        i, j = np.unravel_index(int(d.argmin()), d.shape)
        loop = np.concatenate([part[j:], part[: j + 1]])
        path = np.concatenate([path[: i + 1], loop, path[i:]])
    return path


def polygon_to_mask(polygon: np.ndarray, height: int, width: int) -> np.ndarray:
    """Rasterise one polygon ``(N, 2)`` of pixel indices (what YOLO trains on) to a bool ``(H, W)`` mask."""
    import cv2

    out = np.zeros((height, width), np.uint8)
    if len(polygon):
        cv2.fillPoly(out, [np.round(polygon).astype(np.int32).reshape(-1, 1, 2)], 1)
    return out.astype(bool)


def yolo_label_lines(masks: list[np.ndarray], classes: list[int]) -> list[str]:
    """YOLO segment lines ``class x1 y1 x2 y2 ...`` (coordinates divided by the width / height)."""
    lines = []
    for mask, cls in zip(masks, classes):
        h, w = mask.shape
        poly = mask_to_polygon(mask)
        if len(poly) < 3:
            continue
        coords = " ".join(f"{x / w:.6f} {y / h:.6f}" for x, y in poly)
        lines.append(f"{cls} {coords}")
    return lines


def coco_annotation(mask: np.ndarray, category_id: int, image_id: int, ann_id: int) -> dict[str, Any]:
    """A COCO annotation of one binary mask: RLE segmentation, pixel area, tight xywh box (right edge exclusive)."""
    from pycocotools import mask as mask_util

    rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    ys, xs = np.nonzero(mask)
    box = [float(xs.min()), float(ys.min()), float(xs.max() + 1 - xs.min()), float(ys.max() + 1 - ys.min())]
    return {"id": ann_id, "image_id": image_id, "category_id": int(category_id), "segmentation": rle,
            "area": float(mask.sum()), "bbox": box, "iscrowd": 0}  # fmt: skip


def write_split(
    root: Path,
    split: str,
    samples: list[tuple[str, np.ndarray, list[np.ndarray], list[int]]],
    categories: list[dict[str, Any]],
) -> Path:
    """Write one split: images, YOLO labels and the COCO json. ``samples``: (file name, image, masks, category ids).

    YOLO class = index of the category in ``categories`` (sorted by id); returns the json path.
    """
    from PIL import Image

    (root / "images" / split).mkdir(parents=True, exist_ok=True)
    (root / "labels" / split).mkdir(parents=True, exist_ok=True)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    index = {c["id"]: i for i, c in enumerate(categories)}
    images, anns = [], []
    for image_id, (name, image, masks, cats) in enumerate(samples, start=1):
        Image.fromarray(image).save(root / "images" / split / name)
        h, w = image.shape[:2]
        images.append({"id": image_id, "file_name": name, "height": h, "width": w})
        for mask, cat in zip(masks, cats):
            if mask.any():
                anns.append(coco_annotation(mask, cat, image_id, len(anns) + 1))
        lines = yolo_label_lines(list(masks), [index[c] for c in cats])
        (root / "labels" / split / (Path(name).stem + ".txt")).write_text("\n".join(lines) + ("\n" if lines else ""))
    path = root / "annotations" / f"instances_{split}.json"
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": categories}))
    return path


def write_data_yaml(root: Path, categories: list[dict[str, Any]]) -> Path:
    """Ultralytics' dataset file: absolute root, image folders, names by class index."""
    names = {i: c["name"] for i, c in enumerate(categories)}
    path = root / "data.yaml"
    path.write_text(yaml.safe_dump({"path": str(root.resolve()), "train": "images/train", "val": "images/val",
                                    "names": names}, sort_keys=False))  # fmt: skip
    return path


def write_shapes(root: Path, data_cfg: dict[str, Any]) -> list[dict[str, Any]]:
    """Write the config's shapes train/val splits (the same pixels segkit generates in memory)."""
    from segkit.datasets.shapes import ShapesDataset

    params = {k: v for k, v in data_cfg.items() if k not in ("name", "train", "val", "transforms")}
    categories: list[dict[str, Any]] = []
    for split in ("train", "val"):
        extra = {k: v for k, v in (data_cfg.get(split) or {}).items() if k != "transforms"}
        ds = ShapesDataset(**{**params, **extra, "task": "instance"})
        categories = [{"id": i, "name": n} for i, n in enumerate(ds.class_names) if i > 0]
        samples = []
        for i in range(len(ds)):
            image, _, masks, labels = ds.generate(i)
            samples.append((f"{split}_{i:04d}.png", image, masks, labels))
        write_split(root, split, samples, categories)
    write_data_yaml(root, categories)
    return categories


def write_coco_folder(root: Path, coco_dir: Path, num_val: int) -> list[dict[str, Any]]:
    """Write a COCO-format folder (``annotations/instances_*.json`` + its image folder; crowd regions dropped) as
    train and val splits: the last ``num_val`` images are val."""
    from PIL import Image
    from pycocotools.coco import COCO

    ann_file = sorted((coco_dir / "annotations").glob("instances_*.json"))[0]
    image_dir = coco_dir / ann_file.stem.replace("instances_", "")
    coco = COCO(str(ann_file))
    cat_ids = sorted(coco.getCatIds())
    categories = [{"id": c, "name": coco.cats[c]["name"]} for c in cat_ids]
    ids = sorted(coco.getImgIds())
    for split, chosen in (("train", ids[:-num_val]), ("val", ids[-num_val:])):
        samples = []
        for img_id in chosen:
            info = coco.imgs[img_id]
            image = np.asarray(Image.open(image_dir / info["file_name"]).convert("RGB"))
            anns = [a for a in coco.loadAnns(coco.getAnnIds(imgIds=img_id)) if not a.get("iscrowd")]
            masks = [coco.annToMask(a).astype(bool) for a in anns]
            samples.append((Path(info["file_name"]).stem + ".png", image, masks, [a["category_id"] for a in anns]))
        write_split(root, split, samples, categories)
    write_data_yaml(root, categories)
    return categories


# -------------------------------------------------------------------------------------------------- runs

_YOLO_SCRIPT = (
    PEER_PRELUDE
    + r"""
# Run by bench/instance_peer.py inside the peer environment: train a YOLO segment model or predict with it.
import numpy as np
if mode == "train":
    train(args["project"])
else:
    from pycocotools import mask as mask_util
    model = YOLO(args["weights"])
    out = []
    for image_id, path in args["images"]:
        r = model.predict(path, imgsz=args["imgsz"], conf=0.001, iou=0.7, max_det=args["max_det"],
                          retina_masks=True, device="cpu", verbose=False)[0]
        if r.masks is None:
            continue
        masks = r.masks.data.cpu().numpy() > 0.5
        for box, score, cls, m in zip(r.boxes.xyxy.tolist(), r.boxes.conf.tolist(), r.boxes.cls.tolist(), masks):
            rle = mask_util.encode(np.asfortranarray(m.astype(np.uint8)))
            rle["counts"] = rle["counts"].decode("ascii")
            out.append({"image_id": image_id, "category_id": args["categories"][int(cls)], "score": float(score),
                        "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]], "segmentation": rle})
    json.dump(out, open(args["out"], "w"))
"""
)


def segkit_config(
    base: Path, out: Path, args: argparse.Namespace, coco: Path | None, tag: str
) -> tuple[Path, dict[str, Any]]:
    """The run's config: ``base`` with the run folder, the budget and (with ``--coco``) the written COCO files."""
    cfg = yaml.safe_load(base.read_text())
    info = budget_train(cfg, out / f"segkit_{tag}", args.minutes, args.segkit_epochs)
    if coco is not None:
        data = out / "data"
        cfg["data"] = {"name": "coco", "root": str(data),
                       "train": {"split": "train", "ann_file": str(data / "annotations/instances_train.json"),
                                 "image_dir": str(data / "images/train")},
                       "val": {"split": "val", "ann_file": str(data / "annotations/instances_val.json"),
                               "image_dir": str(data / "images/val")}}  # fmt: skip
        cfg["model"].update(min_size=args.imgsz, max_size=args.imgsz)
    path = out / f"segkit_{tag}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path, info


def yolo_run_name(model: str) -> str:
    """The run's name (its log, its folder under ``--out``) of one peer model: ``yolo_yolo26n-seg``."""
    return f"yolo_{Path(model).stem}"


# -------------------------------------------------------------------------------------------------- scores


def segkit_predictions(checkpoint: Path, gt: Any, image_dir: Path, cat_ids: list[int]) -> list[dict[str, Any]]:
    """segkit's predictions on the val images in COCO result form (Predictor, score threshold 0.001)."""
    from segkit.inference import Predictor
    from segkit.metrics.coco import encode_masks

    predictor = Predictor.from_checkpoint(checkpoint, device="cpu", min_confidence=0.0)
    heads = predictor.model.roi_heads
    heads.score_thresh, heads.detections_per_img = 0.001, MAX_DETS
    out = []
    for img in gt.dataset["images"]:
        inst = predictor.predict(str(image_dir / img["file_name"]))
        masks = inst.masks if inst.masks is not None else np.zeros((0, *inst.image_size), bool)
        for box, label, score, rle in zip(inst.boxes, inst.labels, inst.scores, encode_masks(masks)):
            rle["counts"] = rle["counts"].decode("ascii")
            x1, y1, x2, y2 = (float(v) for v in box)
            out.append({"image_id": img["id"], "category_id": cat_ids[int(label) - 1], "score": float(score),
                        "bbox": [x1, y1, x2 - x1, y2 - y1], "segmentation": rle})  # fmt: skip
    return out


def coco_scores(gt: Any, results: list[dict[str, Any]]) -> dict[str, float]:
    """segm and bbox AP / AP50 / AP75 of ``results`` against ``gt`` (pycocotools COCOeval, quietly)."""
    import contextlib
    import io

    from pycocotools.cocoeval import COCOeval

    scores: dict[str, float] = {}
    for iou_type in ("segm", "bbox"):
        if not results:
            scores.update({f"{iou_type}_{k}": 0.0 for k in ("ap", "ap50", "ap75")})
            continue
        with contextlib.redirect_stdout(io.StringIO()):
            dt = gt.loadRes([dict(r) for r in results])
            ev = COCOeval(gt, dt, iou_type)
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        scores.update({f"{iou_type}_ap": ev.stats[0], f"{iou_type}_ap50": ev.stats[1], f"{iou_type}_ap75": ev.stats[2]})
    return scores


# -------------------------------------------------------------------------------------------------- report


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| run | wall min | CPU min | epochs | train img/s | segm AP | AP50 | AP75 | bbox AP |\n"
        "|---|---|---|---|---|---|---|---|---|"
    )
    lines = [head]
    for r in rows:
        s = r["scores"]
        lines.append(f"| {r['name']} | {r['minutes']:.1f} | {r['cpu']:.1f} | {r['epochs']} | {r['img_s']:.1f} | {s['segm_ap']:.3f} | "
                     f"{s['segm_ap50']:.3f} | {s['segm_ap75']:.3f} | {s['bbox_ap']:.3f} |")  # fmt: skip
    return "\n".join(lines)


def train_all(args: argparse.Namespace, out: Path, runs: dict, want: set[str], python: Path, info: dict) -> dict:
    """Start every training at once (segkit configs and peer models), one thread each; wait for all of them."""
    data = out / "data"
    procs: dict[str, subprocess.Popen] = {}
    starts: dict[str, float] = {}
    load_before = os.getloadavg()
    for model in args.peer_model if "yolo" in want else ():
        name = yolo_run_name(model)
        yargs = {"model": model, "data": str(data / "data.yaml"), "hours": args.minutes / 60, "epochs": 1000,
                 "imgsz": args.imgsz, "batch": info["batch"], "project": str(out / name)}  # fmt: skip
        cmd = [str(python), str(out / "yolo_run.py"), "train", json.dumps(yargs)]
        procs[name], starts[name] = launch(cmd, peer_env(out), out / f"{name}.log"), time.perf_counter()
    for name, (_, cfg_path, _) in runs.items() if "segkit" in want else ():
        cmd = [sys.executable, "-c", SEGKIT_MAIN, "train", "--config", str(cfg_path), *(f"--set={s}" for s in args.set)]
        procs[name], starts[name] = launch(cmd, one_thread_env(), out / f"{name}.log"), time.perf_counter()
    wall, cpu = wait_all(procs, starts, out)
    return run_info(out, wall, cpu, load_before, args.args_list)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="training wall time of each, in minutes")
    parser.add_argument("--config", action="append", default=None,
                        help=f"segkit config (default {DEFAULT_CONFIG}); repeat it to train several side by side "
                        "(the first one's data block gives the shapes)")  # fmt: skip
    parser.add_argument("--peer-model", action="append", default=None,
                        help=f"Ultralytics model yaml trained from scratch (default {DEFAULT_PEER}); repeat it for "
                        "several rows, e.g. --peer-model yolo26n-seg.yaml --peer-model yolov8n-seg.yaml")  # fmt: skip
    parser.add_argument("--coco", type=Path, default=None, help="a COCO-format folder instead of shapes (smoke run)")
    parser.add_argument("--num-val", type=int, default=16, help="with --coco: images held out for val")
    parser.add_argument("--imgsz", type=int, default=None, help="training size (default: the config's image_size)")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "instance_peer")
    parser.add_argument("--peer-env", type=Path, default=ROOT / "runs" / "peer_env")
    parser.add_argument(
        "--install-peer", action="store_true", help=f"create --peer-env, pip-install {PEER_SPECS[0]} there"
    )
    parser.add_argument("--only", choices=("both", "segkit", "yolo"), default="both")
    parser.add_argument("--segkit-epochs", type=int, default=None, help="epochs when the Trainer has no max_minutes")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="segkit config override")
    parser.add_argument("--weights", choices=("best", "last"), default="best", help="checkpoint scored")
    parser.add_argument("--eval-only", action="store_true", help="score the runs already in --out")
    parser.add_argument("--results-key", default="instance_peer", help="RESULTS block name (one per kept run)")
    parser.add_argument("--write-results", action="store_true", help="write the block into bench/RESULTS.md")
    args = parser.parse_args(argv)
    args.args_list = sys.argv[1:] if argv is None else argv
    args.peer_model = args.peer_model or [DEFAULT_PEER]
    args.config = args.config or [DEFAULT_CONFIG]
    return args


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    args = parse_args(argv)
    configs: list[str] = args.config
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    base_cfg = yaml.safe_load((ROOT / configs[0]).read_text())
    args.imgsz = args.imgsz or int(base_cfg["data"].get("image_size", 96) if args.coco is None else 320)
    data = out / "data"
    if not args.eval_only:
        t0 = time.perf_counter()
        write_coco_folder(data, args.coco, args.num_val) if args.coco else write_shapes(data, base_cfg["data"])
        print(f"data written to {data} in {time.perf_counter() - t0:.1f} s", flush=True)
    gt_file = data / "annotations" / "instances_val.json"
    runs = {
        f"segkit_{Path(c).stem}": (c, *segkit_config(ROOT / c, out, args, args.coco, Path(c).stem)) for c in configs
    }
    info = next(iter(runs.values()))[2]
    want = {"segkit", "yolo"} if args.only == "both" else {args.only}
    python = args.peer_env / "bin" / "python"
    if "yolo" in want:
        python = peer_python(args.peer_env, args.install_peer)
        (out / "yolo_run.py").write_text(_YOLO_SCRIPT)
    n_train = len(json.loads((data / "annotations" / "instances_train.json").read_text())["images"])
    saved = json.loads((out / "wall.json").read_text()) if args.eval_only else None
    # --eval-only: the training run's own times, loads and command line
    run = saved or train_all(args, out, runs, want, python, info)
    wall, cpu = run["wall"], run["cpu"]
    import contextlib
    import io

    from pycocotools.coco import COCO

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_file))
    cat_ids = sorted(gt.getCatIds())
    rows = []
    for model in args.peer_model if "yolo" in want else ():
        name = yolo_run_name(model)
        weights = out / name / "train" / "weights" / f"{args.weights}.pt"
        images = [[img["id"], str(data / "images" / "val" / img["file_name"])] for img in gt.dataset["images"]]
        pargs = {"weights": str(weights), "images": images, "imgsz": args.imgsz, "max_det": MAX_DETS,
                 "categories": cat_ids, "out": str(out / f"{name}_val.json")}  # fmt: skip
        subprocess.run([str(python), str(out / "yolo_run.py"), "predict", json.dumps(pargs)],
                       env=peer_env(out), check=True, cwd=ROOT)  # fmt: skip
        epochs = yolo_epochs(out / name / "train")
        rows.append({"name": f"{peer_label(model)} (scratch, {model})", "minutes": wall[name] / 60,
                     "cpu": cpu[name] / 60, "epochs": epochs, "img_s": epochs * n_train / wall[name],
                     "scores": coco_scores(gt, json.loads((out / f"{name}_val.json").read_text()))})  # fmt: skip
    for name, (config, _, _) in runs.items() if "segkit" in want else ():
        preds = segkit_predictions(out / name / f"{args.weights}.pt", gt, data / "images" / "val", cat_ids)
        epochs, _ = segkit_epochs(out / name)
        rows.append({"name": f"segkit `{config}`", "minutes": wall[name] / 60, "cpu": cpu[name] / 60, "epochs": epochs,
                     "img_s": epochs * n_train / wall[name], "scores": coco_scores(gt, preds)})  # fmt: skip
    result = table(rows)
    print(result)
    budget = "train.max_minutes (the Trainer's budget)" if info["budget"] else f"{info['epochs']} epochs (no budget)"
    block = (
        f"Command: `python bench/instance_peer.py {shlex.join(run['command'])}`, {run['when']}. "
        f"CPU: {machine()}, ultralytics {peer_version(python, out)}, segkit {metadata.version('segkit')}; one thread "
        f"each (OMP/MKL 1, torch.set_num_threads(1), workers 0), all trained concurrently; segkit {budget}; load "
        f"average (1/5/15 min) before {loads(run['load_before'])}, after training {loads(run['load_after'])}. "
        f"{n_train} train / {len(gt.dataset['images'])} val images at {args.imgsz} px; {args.weights}.pt of each "
        f"scored by pycocotools on the same COCO json (score >= 0.001, <= {MAX_DETS} detections, masks at the "
        "original size); train img/s = epochs x train images / wall (validation included); CPU min = user + system "
        "time of the training process (wait4)."
    )
    print(block)
    if args.write_results:
        write_results(block + "\n\n" + result, args.results_key, "Instance segmentation vs YOLO26n-seg / YOLOv8n-seg")
    return rows


if __name__ == "__main__":
    main()
