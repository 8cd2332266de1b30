"""What the Trainer reports: trackers (metrics, overlay, histograms), the run's params, the epoch line."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from segkit.datasets.base import default_palette
from segkit.datasets.normalization import Normalization
from segkit.engine.training_state import truncate_jsonl
from segkit.tracking import build_tracker
from segkit.viz import overlay_mask

if TYPE_CHECKING:
    from segkit.engine.trainer import Trainer

__all__ = [
    "conv_weights",
    "denormalize",
    "epoch_line",
    "log_visuals",
    "open_trackers",
    "prediction_overlay",
    "run_params",
]


def denormalize(image: torch.Tensor, normalization: Normalization | Mapping[str, Any] | None = None) -> np.ndarray:
    """Undo the training normalisation for display: ``(C, H, W)`` float -> ``(H, W, 3)`` uint8.

    Args:
        image: a normalised sample image.
        normalization: its statistics (None: ImageNet RGB); multi-band and 16-bit images show their
            first 3 channels rescaled to 0..255 (``Normalization.to_display``).
    """
    return Normalization.coerce(normalization).to_display(image)


@torch.no_grad()
def prediction_overlay(
    model: nn.Module,
    sample: dict[str, Any],
    task: str,
    device: torch.device,
    num_classes: int,
    palette: Any = None,
    score_threshold: float = 0.5,
    normalization: Normalization | None = None,
) -> np.ndarray:
    """Predict one validation sample and return its coloured overlay ``(H, W, 3)`` uint8.

    Args:
        model: the model in eval mode (the EMA model when there is one).
        sample: a dataset sample (``image`` ``(3, H, W)``).
        task: "semantic" (argmax of the logits) or "instance" (masks with score above
            ``score_threshold`` painted with their class colour).
        device: where to run the model.
        num_classes: for the default palette.
        palette: ``(C, 3)`` uint8 colours, or None.
        normalization: the training statistics (to show the image); None: ImageNet RGB.
    """
    image = sample["image"].to(device)
    if task == "instance":
        pred = model([image])[0]
        h, w = image.shape[-2:]
        label_map = torch.zeros((h, w), dtype=torch.int64, device=device)
        keep = pred["scores"] >= score_threshold
        # Paint low scores first so the most confident instance ends on top.
        for k in torch.argsort(pred["scores"][keep]).tolist():
            m = pred["masks"][keep][k, 0] > 0.5
            label_map[m] = pred["labels"][keep][k]
    else:
        out = model(image[None])
        logits = out[0] if isinstance(out, (tuple, list)) else out
        label_map = logits.argmax(1)[0]
    pal = np.asarray(palette, dtype=np.uint8) if palette is not None else default_palette(num_classes)
    return overlay_mask(denormalize(sample["image"], normalization), label_map.cpu().numpy(), pal)


def conv_weights(model: nn.Module, count: int = 4) -> dict[str, np.ndarray]:
    """The weights of the first ``count`` convolution layers as float32 arrays, keyed ``weights/<name>``."""
    out: dict[str, np.ndarray] = {}
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d) and len(out) < count:
            out[f"weights/{name}"] = module.weight.detach().float().cpu().numpy()
    return out


def open_trackers(trainer: Trainer) -> list[Any]:
    """Build the trainer's trackers (``jsonl`` first, always) and log the params (rank 0 only).

    After a resume, rows that the interrupted run logged past the checkpoint's step are removed
    from ``metrics.jsonl`` first, so no step appears twice.
    """
    trainer.out_dir.mkdir(parents=True, exist_ok=True)
    if trainer.state.resumed_step is not None:
        truncate_jsonl(trainer.out_dir / "metrics.jsonl", trainer.state.resumed_step)
    specs: list[Any] = ["jsonl"] + [s for s in trainer.tracker_specs if s != "jsonl"]
    trackers = [build_tracker(s, run_dir=str(trainer.out_dir)) for s in specs]
    params = run_params(trainer)
    for t in trackers:
        t.log_params(params)
    return trackers


def run_params(trainer: Trainer) -> dict[str, Any]:
    """The params trackers log: the resolved config (or ``lr`` and ``epochs``) and, under ``resolved``, what
    this machine runs (``amp``, ``device``) and the time plan of a ``max_minutes`` run once it is made."""
    params: dict[str, Any] = (
        dict(trainer.config) if trainer.config is not None else {"lr": trainer.lr, "epochs": trainer.epochs}
    )
    # What this machine actually runs ("amp: auto" in the config may mean bf16 here and fp32 elsewhere).
    params["resolved"] = {"amp": trainer.amp or "fp32", "device": str(trainer.device)}
    budget = getattr(trainer, "time_budget", None)
    if budget is not None and budget.plan is not None:
        params["resolved"]["time_plan"] = dict(budget.plan)
    return params


def log_visuals(trainer: Trainer) -> None:
    """One validation overlay to every tracker besides ``jsonl``, and the first 4 conv layers' weights to
    those that have an optional ``log_histograms(values, step)`` method."""
    extra = trainer.trackers[1:]  # open_trackers puts jsonl first; it gets scalars only
    if not extra:
        return
    if trainer.val_data is not None:
        model = trainer.eval_model
        was_training = model.training
        overlay = prediction_overlay(
            model.eval(),
            trainer.val_data[0],
            trainer.task,
            trainer.device,
            trainer.num_classes or 2,
            trainer.palette,
            normalization=getattr(trainer, "normalization", None),
        )
        model.train(was_training)
        for t in extra:
            t.log_images({"val/prediction": overlay}, trainer.global_step)
    histograms = conv_weights(trainer.module)
    for t in extra:
        if callable(getattr(t, "log_histograms", None)):
            t.log_histograms(histograms, trainer.global_step)


def epoch_line(epoch: int, epochs: int, metrics: Mapping[str, Any]) -> str:
    """The one line printed after each epoch (loss, mIoU or mask/box AP, throughput)."""
    parts = [f"epoch {epoch + 1}/{epochs}", f"loss {metrics['train/loss']:.4f}"]
    if "val/miou" in metrics:
        parts += [f"val mIoU {metrics['val/miou']:.4f}", f"pixel acc {metrics['val/pixel_accuracy']:.4f}"]
    if "val/segm_ap" in metrics:
        parts += [f"val mask AP {metrics['val/segm_ap']:.4f}", f"box AP {metrics['val/bbox_ap']:.4f}"]
    parts.append(f"{metrics['train/images_per_s']:.1f} img/s")
    return "  ".join(parts)
