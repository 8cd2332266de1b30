"""Semantic segmentation against Ultralytics YOLO26n-sem on CamVid at equal CPU time, both scored by segkit's
ConfusionMatrix on the full val frames.

Usage: python bench/semantic_peer.py --camvid DIR [--minutes 20] [--install-peer] [--config configs/camvid_pidnet.yaml]
       [--peer-model yolo26n-sem.yaml] [--only segkit|yolo] [--eval-only] [--latency | --latency-only]
       [--write-results [--results-key semantic_peer_run2]]
       (DIR may come from the SEGKIT_CAMVID environment variable instead)

1. Writes CamVid (the SegNet layout the ``camvid`` dataset reads: ``train/ trainannot/ val/ valannot/``, the
   ``{split}.txt`` lists) once to ``--out``/data in Ultralytics' semantic layout: ``images/{train,val}/`` (the
   files, copied), ``masks/{train,val}/<stem>.png`` (class ids 0-10 as segkit reads them, void -> 255, the ignore
   label of both) and ``data.yaml`` (``masks_dir: masks``, the 11 class names).
2. Trains both concurrently, one thread each (``OMP_NUM_THREADS=1``, ``workers=0``), for ``--minutes`` of wall
   time: ``--peer-model`` from scratch (``yolo26n-sem.yaml``: no weights, ``time=`` in hours, ``amp=False``,
   ``plots=False``, hub, telemetry and loggers off, ``--imgsz`` and ``--batch``) in ``--peer-env`` (a venv under
   runs/; ``--install-peer`` creates it and pip-installs ultralytics there: AGPL-3.0, never a segkit dependency,
   never imported by segkit); segkit with ``segkit train --config ... `` and ``train.max_minutes=M`` (the config
   is a parameter: any recipe on the ``camvid`` dataset).
3. Scores each tool's ``--weights`` checkpoint on the 101 val frames at the full 480x360 with one
   ``segkit.metrics.ConfusionMatrix`` (void ignored; per-class IoU, mIoU over the 11 classes): segkit through
   ``Predictor`` (the full frame at once), YOLO through its own predictor (``Results.semantic_mask``, returned at
   the original size; resized back with nearest neighbours if it were not).
4. With ``--latency``: ONNX Runtime CPU latency (one thread, median of ``--latency-runs``) per frame at each
   ``--latency-size`` (480x360 and 1024x512) of segkit's checkpoint exported by ``segkit export`` and of the peer's
   own ONNX export (run in the peer venv; Ultralytics rounds sizes up to its stride, the table names the input it
   got), val mIoU beside; ``--latency-checkpoint`` adds more segkit checkpoints (scored on val too).
   ``--latency-only`` times the models a previous run in ``--out`` scored (its ``scores.json``), nothing else.

Prints the tables; ``--write-results`` writes them into bench/RESULTS.md (blocks ``--results-key`` and
``<key>_latency``, replaced on a rerun with the same key). The peer venv and the one-thread runs are bench/_peer.py's.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
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

DEFAULT_CONFIG = "configs/camvid_pidnet.yaml"
DEFAULT_PEER = "yolo26n-sem.yaml"
DEFAULT_SIZES = ("360x480", "512x1024")  # H x W: CamVid's frame and a Cityscapes-like half frame
NUM_CLASSES, IGNORE = 11, 255

# -------------------------------------------------------------------------------------------------- data


def camvid_split(root: Path, split: str) -> Any:
    """segkit's ``camvid`` dataset of ``root`` (SegNet layout), files not opened: what both tools are given."""
    from segkit.datasets.camvid import CamVidDataset

    return CamVidDataset(root, split, layout="segnet", check_files=False)


def write_yolo_semantic(root: Path, out: Path) -> Path:
    """Write CamVid at ``root`` (SegNet layout) in Ultralytics' semantic layout under ``out``; return data.yaml.

    Images are copied as they are; masks are the labels exactly as segkit reads them (``camvid``'s table: 0-10,
    void 11 -> 255), as single-channel PNGs of the image's stem.
    """
    from PIL import Image

    from segkit.datasets.camvid import CAMVID_CLASSES
    from segkit.datasets.decoding import read_mask

    for folder in ("images", "masks"):  # a previous run's files (and Ultralytics' label caches) go
        shutil.rmtree(out / folder, ignore_errors=True)
    for split in ("train", "val"):
        ds = camvid_split(root, split)
        (out / "images" / split).mkdir(parents=True)
        (out / "masks" / split).mkdir(parents=True)
        for image_path, label_path in ds.items:
            shutil.copyfile(image_path, out / "images" / split / image_path.name)
            label = ds.table(read_mask(label_path), label_path)
            Image.fromarray(label.astype(np.uint8)).save(out / "masks" / split / f"{image_path.stem}.png")
    path = out / "data.yaml"
    path.write_text(yaml.safe_dump({"path": str(out.resolve()), "train": "images/train", "val": "images/val",
                                    "masks_dir": "masks", "names": dict(enumerate(CAMVID_CLASSES))},
                                   sort_keys=False))  # fmt: skip
    return path


# -------------------------------------------------------------------------------------------------- runs

_YOLO_SCRIPT = (
    PEER_PRELUDE
    + r"""
# Run by bench/semantic_peer.py inside the peer environment: train a YOLO semantic model, predict or export it.
import shutil
from pathlib import Path
import numpy as np
from PIL import Image
out = Path(args["out"])
if mode == "train":
    train(str(out))
elif mode == "predict":  # class maps at the original size (uint8 PNG per image stem)
    model = YOLO(args["weights"])
    out.mkdir(parents=True, exist_ok=True)
    for path in args["images"]:
        r = model.predict(path, imgsz=args["imgsz"], device="cpu", verbose=False)[0]
        Image.fromarray(r.semantic_mask.data.cpu().numpy().astype(np.uint8)).save(out / (Path(path).stem + ".png"))
    json.dump({"params": sum(p.numel() for p in model.model.parameters())}, open(out / "model.json", "w"))
else:  # export: its own ONNX export (defaults) at each size
    files = {}
    for h, w in args["sizes"]:
        f = YOLO(args["weights"]).export(format="onnx", imgsz=[h, w], device="cpu", verbose=False)
        files[f"{h}x{w}"] = str(shutil.move(f, out / f"yolo_{h}x{w}.onnx"))
    json.dump(files, open(out / "yolo_onnx.json", "w"))
"""
)


def segkit_config(base: Path, camvid: Path, out: Path, args: argparse.Namespace) -> tuple[Path, dict[str, Any]]:
    """The run's config: ``base`` on the CamVid at ``camvid``, with the run folder and the budget."""
    cfg = yaml.safe_load(base.read_text())
    if cfg.get("data", {}).get("name") != "camvid":
        sys.exit(f"{base}: data.name must be camvid (this bench scores CamVid's val split), got {cfg.get('data')}")
    cfg["data"]["root"] = str(camvid)
    info = budget_train(cfg, out / "segkit", args.minutes, None)
    path = out / "segkit.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path, info


def run_peer(python: Path, out: Path, mode: str, pargs: dict[str, Any]) -> None:
    """One mode of the peer script (``out/yolo_sem.py``) in the peer venv, waited for."""
    subprocess.run([str(python), str(out / "yolo_sem.py"), mode, json.dumps(pargs)],
                   env=peer_env(out), check=True, cwd=ROOT)  # fmt: skip


def train_both(args: argparse.Namespace, out: Path, want: set[str], python: Path, cfg_path: Path) -> dict:
    """Start both trainings at once, one thread each; wait for both."""
    procs: dict[str, subprocess.Popen] = {}
    starts: dict[str, float] = {}
    load_before = os.getloadavg()
    if "yolo" in want:
        yargs = {"model": args.peer_model, "data": str(out / "data" / "data.yaml"), "hours": args.minutes / 60,
                 "epochs": 1000, "imgsz": args.imgsz, "batch": args.batch, "out": str(out / "yolo")}  # fmt: skip
        cmd = [str(python), str(out / "yolo_sem.py"), "train", json.dumps(yargs)]
        procs["yolo"], starts["yolo"] = launch(cmd, peer_env(out), out / "yolo.log"), time.perf_counter()
    if "segkit" in want:
        cmd = [sys.executable, "-c", SEGKIT_MAIN, "train", "--config", str(cfg_path), *(f"--set={s}" for s in args.set)]
        procs["segkit"], starts["segkit"] = launch(cmd, one_thread_env(), out / "segkit.log"), time.perf_counter()
    wall, cpu = wait_all(procs, starts, out)
    return run_info(out, wall, cpu, load_before, args.args_list)


# -------------------------------------------------------------------------------------------------- scores


def resize_nearest(pred: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A class map resized to ``shape`` (H, W) by nearest neighbours (pixel centres), values untouched."""
    if pred.shape == tuple(shape):
        return pred
    h, w = pred.shape
    rows = np.minimum(((np.arange(shape[0]) + 0.5) * h / shape[0]).astype(np.int64), h - 1)
    cols = np.minimum(((np.arange(shape[1]) + 0.5) * w / shape[1]).astype(np.int64), w - 1)
    return pred[rows[:, None], cols[None, :]]


def score(root: Path, preds: dict[str, np.ndarray]) -> dict[str, Any]:
    """segkit's confusion matrix over CamVid's val split: ``preds`` maps each val image stem to its class map.

    Returns:
        ``ConfusionMatrix.compute()`` (``miou``, per-class ``iou``, ...) over the 11 classes.

    Raises:
        KeyError: a val image has no prediction.
    """
    import torch

    from segkit.datasets.camvid import CAMVID_CLASSES
    from segkit.datasets.decoding import read_mask
    from segkit.metrics import ConfusionMatrix

    cm = ConfusionMatrix(NUM_CLASSES, IGNORE, class_names=CAMVID_CLASSES)
    ds = camvid_split(root, "val")
    for image_path, label_path in ds.items:
        if image_path.stem not in preds:
            raise KeyError(f"no prediction for val image {image_path} (predicted: {len(preds)} images)")
        target = ds.table(read_mask(label_path), label_path)
        pred = resize_nearest(np.asarray(preds[image_path.stem]), target.shape)
        cm.update(torch.from_numpy(pred.astype(np.int64))[None], torch.from_numpy(target.astype(np.int64))[None])
    return cm.compute()


def segkit_scores(checkpoint: Path, root: Path) -> tuple[dict[str, Any], int]:
    """Val scores of a segkit checkpoint (``Predictor``, each full frame at once) and its parameter count."""
    from segkit.inference import Predictor

    predictor = Predictor.from_checkpoint(checkpoint, device="cpu")
    paths = [image for image, _ in camvid_split(root, "val").items]
    preds = {}
    for i in range(0, len(paths), 8):
        chunk = paths[i : i + 8]
        preds.update({p.stem: m for p, m in zip(chunk, predictor.predict([str(p) for p in chunk]))})
    return score(root, preds), sum(p.numel() for p in predictor.model.parameters())


def yolo_scores(python: Path, out: Path, weights: Path, root: Path, imgsz: int) -> tuple[dict[str, Any], int]:
    """Val scores of the peer's checkpoint (its predictor's class maps) and its parameter count."""
    from PIL import Image

    pred_dir = out / "yolo_pred"
    shutil.rmtree(pred_dir, ignore_errors=True)
    images = [str(out / "data" / "images" / "val" / image.name) for image, _ in camvid_split(root, "val").items]
    run_peer(python, out, "predict", {"weights": str(weights), "images": images, "imgsz": imgsz, "out": str(pred_dir)})
    preds = {p.stem: np.asarray(Image.open(p)) for p in pred_dir.glob("*.png")}
    return score(root, preds), int(json.loads((pred_dir / "model.json").read_text())["params"])


# -------------------------------------------------------------------------------------------------- latency


def parse_size(text: str) -> tuple[int, int]:
    """``"360x480"`` -> ``(360, 480)`` (H x W)."""
    h, _, w = text.partition("x")
    return int(h), int(w)


def ort_latency(path: Path, size: tuple[int, int], runs: int = 50, warmup: int = 5) -> tuple[float, tuple[int, ...]]:
    """Median wall milliseconds of one ONNX Runtime CPU inference (one thread) on a random frame, after ``warmup``
    runs; and the input shape: the model's own where it is fixed (the peer's rounded size), else batch 1 and
    ``size`` (H, W; segkit's graphs take any H, W)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = 1, 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    inp = session.get_inputs()[0]
    shape = tuple(d if isinstance(d, int) else n for d, n in zip(inp.shape, (1, 3, *size)))
    x = {inp.name: np.random.default_rng(0).random(shape, dtype=np.float32)}
    for _ in range(warmup):
        session.run(None, x)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        session.run(None, x)
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times), shape


def latency_rows(args: argparse.Namespace, out: Path, python: Path, models: list[dict[str, Any]]) -> list[dict]:
    """Export each model to ONNX at every ``--latency-size`` and time it; ``models``: scored rows with ``kind``
    (segkit / yolo) and ``weights``."""
    folder = out / "latency"
    folder.mkdir(parents=True, exist_ok=True)
    sizes = [parse_size(s) for s in args.latency_size]
    rows = []
    for model in models:
        files: dict[str, str] = {}
        if model["kind"] == "yolo":
            run_peer(python, out, "export", {"weights": str(model["weights"]), "sizes": sizes, "out": str(folder)})
            files = json.loads((folder / "yolo_onnx.json").read_text())
        else:
            from segkit.cli import main as segkit_cli  # `segkit export`, in this process (saves an import)

            for h, w in sizes:
                path = folder / f"{model['tag']}_{h}x{w}.onnx"
                if segkit_cli(
                    ["export", "--checkpoint", str(model["weights"]), "--out", str(path), "--size", str(h), str(w)]
                ):
                    sys.exit(f"segkit export of {model['weights']} at {h}x{w} failed (its message is above)")
                files[f"{h}x{w}"] = str(path)
        times = {size: ort_latency(Path(f), parse_size(size), args.latency_runs) for size, f in files.items()}
        rows.append({**model, "latency": times})
    return rows


# -------------------------------------------------------------------------------------------------- report


def _iou(v: float) -> str:
    return "n/a" if v != v else f"{v:.3f}"


def table(rows: list[dict[str, Any]], n_train: int) -> str:
    """The run table (time, epochs, speed, size, mIoU) and the per-class IoU table."""
    from segkit.datasets.camvid import CAMVID_CLASSES

    lines = ["| run | wall min | CPU min | epochs | train img/s | params | val mIoU |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        own = f" ({r['own_img_s']:.1f})" if r.get("own_img_s") else ""
        img_s = r["epochs"] * n_train / r["wall"]
        lines.append(f"| {r['name']} | {r['wall'] / 60:.1f} | {r['cpu'] / 60:.1f} | {r['epochs']} | {img_s:.1f}{own} | "
                     f"{r['params'] / 1e6:.2f}M | **{r['scores']['miou']:.3f}** |")  # fmt: skip
    lines += ["", "| val IoU | " + " | ".join(CAMVID_CLASSES) + " |", "|---" * (NUM_CLASSES + 1) + "|"]
    for r in rows:
        lines.append(f"| {r['name']} | " + " | ".join(_iou(v) for v in r["scores"]["iou"]) + " |")
    return "\n".join(lines)


def latency_table(rows: list[dict[str, Any]]) -> str:
    """Latency per size beside the val mIoU and parameters; each size's cell names the ONNX input shape."""
    sizes = list(rows[0]["latency"]) if rows else []
    head = "| model | params | val mIoU | " + " | ".join(f"ms per {s} frame (input)" for s in sizes) + " |"
    lines = [head, "|---" * (3 + len(sizes)) + "|"]
    for r in rows:
        cells = [f"{ms:.1f} ({'x'.join(map(str, shape[2:]))})" for ms, shape in r["latency"].values()]
        lines.append(
            f"| {r['name']} | {r['params'] / 1e6:.2f}M | {r['scores']['miou']:.3f} | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--camvid", type=Path, default=None, help="CamVid in the SegNet layout (or $SEGKIT_CAMVID)")
    parser.add_argument("--minutes", type=float, default=20.0, help="training wall time of each, in minutes")
    parser.add_argument("--config", default=DEFAULT_CONFIG, help="segkit config (a recipe on the camvid dataset)")
    parser.add_argument("--peer-model", default=DEFAULT_PEER, help="Ultralytics model yaml trained from scratch")
    parser.add_argument("--imgsz", type=int, default=480, help="the peer's training and prediction size")
    parser.add_argument("--batch", type=int, default=8, help="the peer's batch")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "semantic_peer")
    parser.add_argument("--peer-env", type=Path, default=ROOT / "runs" / "peer_env")
    parser.add_argument("--install-peer", action="store_true", help="create --peer-env, pip-install ultralytics there")
    parser.add_argument("--only", choices=("both", "segkit", "yolo"), default="both")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="segkit config override")
    parser.add_argument("--weights", choices=("best", "last"), default="best", help="checkpoint scored")
    parser.add_argument("--eval-only", action="store_true", help="score the runs already in --out")
    parser.add_argument("--latency", action="store_true", help="also time ONNX Runtime inference of both")
    parser.add_argument("--latency-only", action="store_true",
                        help="only time the models scored before in --out (its scores.json)")  # fmt: skip
    parser.add_argument("--latency-size", action="append", default=None, metavar="HxW",
                        help=f"frame size timed (repeatable; default {' '.join(DEFAULT_SIZES)})")  # fmt: skip
    parser.add_argument("--latency-runs", type=int, default=50, help="timed runs per model and size (median)")
    parser.add_argument("--latency-checkpoint", action="append", default=[], type=Path,
                        help="another segkit checkpoint for the latency table (scored on val too)")  # fmt: skip
    parser.add_argument("--write-results", action="store_true", help="write the blocks into bench/RESULTS.md")
    parser.add_argument("--results-key", default="semantic_peer", help="RESULTS block name (one per kept run)")
    args = parser.parse_args(argv)
    args.args_list = sys.argv[1:] if argv is None else argv
    args.latency_size = args.latency_size or list(DEFAULT_SIZES)
    camvid = args.camvid or os.environ.get("SEGKIT_CAMVID")
    if not camvid:
        parser.error("no CamVid: pass --camvid DIR or set SEGKIT_CAMVID (SegNet layout: train/ trainannot/ val/ ...)")
    args.camvid = Path(camvid).resolve()
    return args


def train_and_score(args: argparse.Namespace, out: Path, python: Path) -> list[dict[str, Any]]:
    """Write the data, train both (or read the runs of ``--eval-only``), score both; print (and write) the block."""
    want = {"segkit", "yolo"} if args.only == "both" else {args.only}
    if not args.eval_only:
        t0 = time.perf_counter()
        write_yolo_semantic(args.camvid, out / "data")
        print(f"data written to {out / 'data'} in {time.perf_counter() - t0:.1f} s", flush=True)
    cfg_path, info = segkit_config(ROOT / args.config, args.camvid, out, args)
    # --eval-only: the training run's own times, loads and command line
    run = (
        json.loads((out / "wall.json").read_text()) if args.eval_only else train_both(args, out, want, python, cfg_path)
    )
    n_train = len(camvid_split(args.camvid, "train"))
    rows = []
    if "yolo" in want:
        weights = out / "yolo" / "train" / "weights" / f"{args.weights}.pt"
        scores, params = yolo_scores(python, out, weights, args.camvid, args.imgsz)
        rows.append({"name": f"{peer_label(args.peer_model)} (scratch, {args.peer_model})", "kind": "yolo",
                     "weights": str(weights), "wall": run["wall"]["yolo"], "cpu": run["cpu"]["yolo"],
                     "epochs": yolo_epochs(out / "yolo" / "train"), "params": params, "scores": scores})  # fmt: skip
    if "segkit" in want:
        weights = out / "segkit" / f"{args.weights}.pt"
        scores, params = segkit_scores(weights, args.camvid)
        epochs, own = segkit_epochs(out / "segkit")
        rows.append({"name": f"segkit `{args.config}`", "kind": "segkit", "tag": "segkit", "weights": str(weights),
                     "wall": run["wall"]["segkit"], "cpu": run["cpu"]["segkit"], "epochs": epochs, "own_img_s": own,
                     "params": params, "scores": scores})  # fmt: skip
    (out / "scores.json").write_text(json.dumps(rows))  # what --latency-only reads
    result = table(rows, n_train)
    print(result)
    budget = "train.max_minutes (the Trainer's budget)" if info["budget"] else f"{info['epochs']} epochs (no budget)"
    block = (
        f"Command: `python bench/semantic_peer.py {shlex.join(run['command'])}`, {run['when']}. "
        f"CPU: {machine()}, ultralytics {peer_version(python, out)}, segkit {metadata.version('segkit')}; one thread "
        f"each (OMP/MKL 1, torch.set_num_threads(1), workers 0), trained concurrently; segkit {budget}; "
        f"{args.peer_model} at imgsz {args.imgsz}, batch {args.batch}, its `time=` plan; load average (1/5/15 min) "
        f"at start {loads(run['load_before'])}, at the end of training {loads(run['load_after'])}. CamVid (SegNet "
        f"split) {n_train} train / {len(camvid_split(args.camvid, 'val'))} val frames; {args.weights}.pt of each "
        "scored by segkit's ConfusionMatrix at the full 480x360 frame (void ignored, mIoU over the 11 classes). "
        "train img/s = epochs x train images / wall (validation and start-up included; a last epoch cut short by "
        "the peer's `time=` counts whole; in brackets the Trainer's own training-only figure); CPU min = user + "
        "system time of the training process (wait4)."
    )
    print(block)
    if args.write_results:
        write_results(block + "\n\n" + result, args.results_key, "Semantic segmentation vs YOLO26n-sem (CamVid)")
    return rows


def checkpoint_model(path: Path) -> str:
    """The model a segkit checkpoint holds, as built: ``"pidnet_s, input_scale 0.5"`` (its recorded arguments
    except ``num_classes``)."""
    import torch

    config = dict(torch.load(path, map_location="cpu", weights_only=False).get("model_config") or {})
    name = config.pop("name", "?")
    config.pop("num_classes", None)
    return ", ".join([name] + [f"{k} {v}" for k, v in config.items()])


def latency_report(args: argparse.Namespace, out: Path, python: Path, rows: list[dict]) -> list[dict[str, Any]]:
    """Time the scored ``rows`` (and each ``--latency-checkpoint``, scored first); print (and write) the table."""
    extra = [{"name": f"segkit {checkpoint_model(c)} (`{c}`)", "kind": "segkit", "tag": f"extra{i}",
              "weights": str(c.resolve())} for i, c in enumerate(args.latency_checkpoint)]  # fmt: skip
    for model in extra:
        model["scores"], model["params"] = segkit_scores(Path(model["weights"]), args.camvid)
    timed = latency_rows(args, out, python, rows + extra)
    text = latency_table(timed)
    note = (
        f"Command: `python bench/semantic_peer.py {shlex.join(args.args_list)}`, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average {loads(os.getloadavg())}. CPU: "
        f"{machine()}; ONNX Runtime {metadata.version('onnxruntime')}, one thread (intra/inter op 1, sequential), "
        f"batch 1, median of {args.latency_runs} runs after 5 warm-up runs. segkit: `segkit export --size H W` of the "
        "checkpoint (input HxW, logits out); the peer: its own `model.export(format='onnx', imgsz=[H, W])` "
        "(defaults; it rounds sizes up to its stride 32: the input in brackets). Val mIoU of the scored run in "
        f"{args.out}."
    )
    print(text + "\n" + note)
    if args.write_results:
        write_results(note + "\n\n" + text, f"{args.results_key}_latency",
                      "Semantic segmentation: ONNX Runtime CPU latency vs YOLO26n-sem")  # fmt: skip
    return timed


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    args = parse_args(argv)
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    python = args.peer_env / "bin" / "python"
    if args.only != "segkit":
        python = peer_python(args.peer_env, args.install_peer)
        (out / "yolo_sem.py").write_text(_YOLO_SCRIPT)
    if args.latency_only:  # the rows that --write-results' run scored
        rows = json.loads((out / "scores.json").read_text())
    else:
        rows = train_and_score(args, out, python)
    if args.latency or args.latency_only:
        rows = latency_report(args, out, python, rows)
    return rows


if __name__ == "__main__":
    main()
