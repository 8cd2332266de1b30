"""Training reports: loss and metric curves, a normalised confusion matrix, the worst validation images."""

from __future__ import annotations

import functools
import heapq
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from segkit.viz.figures import figure_to_array, new_figure, save_figure
from segkit.viz.overlay import colorize

__all__ = ["per_image_miou", "plot_confusion", "plot_curves", "plot_worst", "write_report"]

SUMMARY_METRICS = ("miou", "mdice", "pixel_accuracy", "mean_accuracy")


def plot_curves(records: Sequence[Mapping[str, Any]] | str | Path) -> Any:
    """Loss and metric curves from the rows of ``metrics.jsonl``.

    Per-step rows (no ``epoch`` key) give the training loss against the step; epoch rows give the
    epoch-mean training loss (markers) and the validation summaries (``val/miou``, ``val/mdice``,
    ``val/pixel_accuracy``, ``val/mean_accuracy``) against the epoch.

    Args:
        records: the parsed rows, or the path of ``metrics.jsonl``.

    Returns:
        A ``Figure`` with two axes: ``loss`` and ``validation``; one line per series.
    """
    if isinstance(records, (str, Path)):
        from segkit.tracking.jsonl import read_jsonl

        records = read_jsonl(records)
    steps = [r for r in records if "epoch" not in r and "train/loss" in r]
    epochs = [r for r in records if "epoch" in r]
    fig = new_figure((11.0, 4.0))
    ax_loss, ax_val = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    if steps:
        ax_loss.plot([r["step"] for r in steps], [r["train/loss"] for r in steps], label="train/loss (step)", alpha=0.7)
    if any("train/loss" in r for r in epochs):
        rows = [r for r in epochs if "train/loss" in r]
        ax_loss.plot([r["step"] for r in rows], [r["train/loss"] for r in rows], "o-", label="train/loss (epoch mean)")
    ax_loss.set_xlabel("step")
    ax_loss.set_title("loss")
    for name in SUMMARY_METRICS:
        key = f"val/{name}"
        rows = [r for r in epochs if key in r]
        if rows:
            ax_val.plot([r["epoch"] + 1 for r in rows], [r[key] for r in rows], "o-", label=key)
    ax_val.set_xlabel("epoch")
    ax_val.set_title("validation")
    for ax in (ax_loss, ax_val):
        if ax.lines:
            ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    return fig


def plot_confusion(
    matrix: np.ndarray | torch.Tensor, class_names: Sequence[str] | None = None, normalize: bool = True
) -> Any:
    """Confusion matrix as a heat map (rows = ground truth, columns = prediction).

    Args:
        matrix: ``(C, C)`` counts.
        class_names: axis labels.
        normalize: divide each row by its total (recall per class); rows with no pixels are blank (NaN).

    Returns:
        A ``Figure``; its image (``fig.axes[0].images[0]``) holds the plotted values.
    """
    mat = np.asarray(matrix.cpu() if isinstance(matrix, torch.Tensor) else matrix, dtype=np.float64)
    if normalize:
        rows = mat.sum(1, keepdims=True)
        mat = np.divide(mat, rows, out=np.full_like(mat, np.nan), where=rows > 0)
    c = mat.shape[0]
    names = list(class_names) if class_names is not None else [str(i) for i in range(c)]
    size = max(4.0, 0.55 * c + 2.0)
    fig = new_figure((size + 1.0, size))
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(mat, cmap="Blues", vmin=0.0, vmax=1.0 if normalize else None)
    fig.colorbar(im, ax=ax, fraction=0.046)
    ax.set_xticks(range(c), names, rotation=45, ha="right")
    ax.set_yticks(range(c), names)
    ax.set_xlabel("prediction")
    ax.set_ylabel("ground truth")
    ax.set_title("confusion matrix" + (" (row-normalised)" if normalize else ""))
    if c <= 30:  # numbers stay legible up to about 30 classes
        for i in range(c):
            for j in range(c):
                if not math.isnan(mat[i, j]):
                    v = mat[i, j]
                    ax.text(
                        j,
                        i,
                        f"{v:.2f}" if normalize else f"{int(v)}",
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="white" if normalize and v > 0.5 else "black",
                    )
    return fig


def per_image_miou(pred: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: int = 255) -> torch.Tensor:
    """Mean IoU of each image over the classes present in its target or prediction.

    Args:
        pred: ``(N, H, W)`` int predictions.
        target: ``(N, H, W)`` int labels; ``ignore_index`` pixels are skipped.
        num_classes: C.
        ignore_index: label to skip.

    Returns:
        ``(N,)`` float64; NaN for an image whose pixels are all ignored.
    """
    n, c = pred.shape[0], num_classes
    t = target.reshape(n, -1).long()
    p = pred.reshape(n, -1).long().clamp(0, c - 1)
    valid = (t >= 0) & (t < c) & (t != ignore_index)
    img = torch.arange(n, device=t.device)[:, None].expand_as(t)
    idx = (img * c * c + t.clamp(0, c - 1) * c + p)[valid]
    mat = torch.bincount(idx, minlength=n * c * c).reshape(n, c, c).double()
    tp = mat.diagonal(dim1=1, dim2=2)
    union = mat.sum(2) + mat.sum(1) - tp
    iou = torch.where(union > 0, tp / union.clamp_min(1), torch.nan)
    present = union > 0
    return torch.where(present.any(1), torch.nan_to_num(iou).sum(1) / present.sum(1).clamp_min(1), torch.nan)


def plot_worst(
    items: Sequence[tuple[float, np.ndarray, np.ndarray, np.ndarray, str]],
    palette: np.ndarray | Sequence[Sequence[int]],
    class_names: Sequence[str] | None = None,
) -> Any:
    """A grid with one row per image: image, ground truth, prediction; titled with the image's mIoU.

    Args:
        items: ``(miou, image (H, W, 3) uint8, target (H, W), prediction (H, W), name)`` tuples, worst first.
        palette: ``(C, 3)`` uint8 colours.
        class_names: names for the legend.

    Returns:
        A ``Figure`` with ``3 * len(items)`` axes.
    """
    from matplotlib.patches import Patch

    palette = np.asarray(palette, dtype=np.uint8)
    rows = max(1, len(items))
    fig = new_figure((9.5, 3.0 * rows))
    for r, (score, image, target, pred, name) in enumerate(items):
        for k, (title, picture) in enumerate(
            [
                (f"{name}  mIoU {score:.3f}", image),
                ("ground truth", colorize(target, palette)),
                ("prediction", colorize(pred, palette)),
            ]
        ):
            ax = fig.add_subplot(rows, 3, 3 * r + k + 1)
            ax.imshow(picture, interpolation="nearest")
            ax.set_title(title, fontsize=8)
            ax.set_axis_off()
    if class_names is not None and items:
        handles = [Patch(facecolor=palette[i] / 255.0, label=n) for i, n in enumerate(class_names) if i < len(palette)]
        fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), fontsize=8)
    return fig


def _run_config(run_dir: Path, ckpt_path: Path) -> dict[str, Any]:
    import yaml

    from segkit.checkpoint import load_checkpoint
    from segkit.config import ConfigError

    cfg_file = run_dir / "config.yaml"
    if cfg_file.is_file():
        raw = yaml.safe_load(cfg_file.read_text())
    else:
        raw = load_checkpoint(ckpt_path).get("config")
    if not isinstance(raw, dict) or "data" not in raw:
        raise ConfigError(f"{run_dir}: no config.yaml with a data block (and none inside {ckpt_path.name})")
    return raw


def evaluate_run(
    run_dir: str | Path,
    checkpoint: str = "best.pt",
    num_worst: int = 6,
    max_images: int | None = None,
    device: str = "auto",
) -> dict[str, Any]:
    """Predict the validation split of a run and collect the confusion matrix and the worst images.

    Args:
        run_dir: the Trainer's ``out_dir`` (holds the checkpoint and ``config.yaml``).
        checkpoint: file name inside ``run_dir`` (falls back to ``last.pt``).
        num_worst: how many worst images (by per-image mIoU) to keep.
        max_images: evaluate at most this many validation images.
        device: where to run.

    Returns:
        ``{"confusion": ConfusionMatrix, "worst": [(miou, image, target, pred, name), ...], "predictor": Predictor}``.
    """
    from segkit.config import ConfigError, config_from_dict
    from segkit.datasets import build_dataset, collate_semantic, dataset_info, predict_unpadded
    from segkit.datasets.normalization import share_normalization
    from segkit.inference import Predictor
    from segkit.metrics import evaluate

    run_dir = Path(run_dir)
    ckpt = run_dir / checkpoint
    if not ckpt.is_file() and (run_dir / "last.pt").is_file():
        ckpt = run_dir / "last.pt"
    predictor = Predictor.from_checkpoint(ckpt, device=device)
    cfg = config_from_dict(_run_config(run_dir, ckpt), validate=False)
    params = cfg.data.split_params("val")
    if params is None:
        raise ConfigError(f"{run_dir}: the config has no val data block")
    data = build_dataset(cfg.data.name, **params)
    share_normalization(data, predictor.normalization)  # the checkpoint's statistics, not the split's own
    info = dataset_info(data)
    if info.num_classes is None:
        raise ConfigError(f"{run_dir}: the validation dataset ({cfg.data.name}) has no num_classes")
    num_classes, ignore_index = info.num_classes, info.ignore_index
    count = len(data) if max_images is None else min(len(data), max_images)  # type: ignore[arg-type]
    heap: list[tuple[float, int, Any]] = []  # max-heap on mIoU (negated) holding the worst images
    seen = [0]

    def keep_worst(batch: dict[str, Any], pred: torch.Tensor) -> None:
        pred = pred.cpu()
        scores = per_image_miou(pred, batch["mask"].cpu(), num_classes, ignore_index)
        for k, s in enumerate(scores.tolist()):
            index, seen[0] = seen[0], seen[0] + 1
            if math.isnan(s):
                continue
            entry = (-s, index, ({key: _cpu(v) for key, v in batch.items()}, k, pred))
            if len(heap) < num_worst:
                heapq.heappush(heap, entry)
            elif s < -heap[0][0]:
                heapq.heapreplace(heap, entry)

    def predict(batch: dict[str, Any]) -> torch.Tensor:
        # Images of different sizes: each predicted at its own size (padding never changes a prediction).
        return predict_unpadded(predictor.predict, batch) if batch["padded"] else predictor.predict(batch["image"])

    loader = DataLoader(Subset(data, range(count)), predictor.batch_size,
                        collate_fn=functools.partial(collate_semantic, ignore_index=ignore_index))  # fmt: skip
    _, cm = evaluate(predictor.model, loader, num_classes=num_classes, ignore_index=ignore_index,
                     class_names=info.class_names, device=predictor.device, predict=predict,
                     on_prediction=keep_worst)  # fmt: skip
    worst = []
    for neg, _, (batch, k, pred) in sorted(heap, key=lambda e: -e[0]):
        h, w = batch["image_sizes"][k].tolist()  # without the padding
        image = predictor.normalization.to_display(batch["image"][k, :, :h, :w])
        worst.append((-neg, image, batch["mask"][k, :h, :w].numpy(), pred[k, :h, :w].numpy(), str(batch["path"][k])))
    return {"confusion": cm, "worst": worst, "predictor": predictor}


def _cpu(value: Any) -> Any:
    return value.cpu() if isinstance(value, torch.Tensor) else value


def write_report(
    run_dir: str | Path,
    out_dir: str | Path | None = None,
    checkpoint: str = "best.pt",
    num_worst: int = 6,
    max_images: int | None = None,
    trackers: Sequence[Any] = (),
    device: str = "auto",
) -> list[Path]:
    """Write ``curves.png``, ``confusion.png`` and ``worst.png`` for a run folder.

    Curves need ``metrics.jsonl``; the confusion matrix and worst images need a checkpoint and the
    config (``config.yaml`` or the one inside the checkpoint) to rebuild the validation data.

    Args:
        run_dir: the Trainer's ``out_dir``.
        out_dir: where PNGs go (default ``run_dir/report``).
        checkpoint: checkpoint file name in ``run_dir``.
        num_worst: rows of the worst-images grid.
        max_images: cap on validation images evaluated.
        trackers: objects with ``log_images(images, step)``; each figure is also sent to them.
        device: where to run the model.

    Returns:
        The PNG paths written.

    Raises:
        FileNotFoundError: ``run_dir`` does not exist or holds neither metrics nor a checkpoint.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run folder not found: {run_dir}")
    out = Path(out_dir) if out_dir is not None else run_dir / "report"
    figures: dict[str, Any] = {}
    if (run_dir / "metrics.jsonl").is_file():
        figures["curves"] = plot_curves(run_dir / "metrics.jsonl")
    if (run_dir / checkpoint).is_file() or (run_dir / "last.pt").is_file():
        result = evaluate_run(run_dir, checkpoint, num_worst, max_images, device)
        predictor, cm = result["predictor"], result["confusion"]
        figures["confusion"] = plot_confusion(cm.mat, cm.class_names)
        palette = predictor.palette if predictor.palette is not None else _palette(cm.num_classes)
        figures["worst"] = plot_worst(result["worst"], palette, cm.class_names)
    if not figures:
        raise FileNotFoundError(f"{run_dir}: neither metrics.jsonl nor a checkpoint ({checkpoint}, last.pt) found")
    paths = [save_figure(fig, out / f"{name}.png") for name, fig in figures.items()]
    for tracker in trackers:
        tracker.log_images({f"report/{name}": figure_to_array(fig) for name, fig in figures.items()}, 0)
    return paths


def _palette(num_classes: int) -> np.ndarray:
    from segkit.datasets.base import default_palette

    return default_palette(num_classes)
