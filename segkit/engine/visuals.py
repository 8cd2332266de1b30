"""What the Trainer sends to image-capable trackers: a validation overlay and first-layer weights."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from segkit.datasets.base import IMAGENET_MEAN, IMAGENET_STD
from segkit.datasets.base import default_palette
from segkit.viz import overlay_mask

__all__ = ["conv_weights", "denormalize", "prediction_overlay"]


def denormalize(image: torch.Tensor) -> np.ndarray:
    """Undo ImageNet normalisation: ``(3, H, W)`` float -> ``(H, W, 3)`` uint8."""
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    rgb = (image.detach().float().cpu() * std + mean).clamp(0, 1) * 255
    return (rgb + 0.5).to(torch.uint8).permute(1, 2, 0).numpy()


@torch.no_grad()
def prediction_overlay(model: nn.Module, sample: dict[str, Any], task: str, device: torch.device,
                       num_classes: int, palette: Any = None, score_threshold: float = 0.5) -> np.ndarray:
    """Predict one validation sample and return its coloured overlay ``(H, W, 3)`` uint8.

    Args:
        model: the model in eval mode (the EMA model when there is one).
        sample: a dataset sample (``image`` ``(3, H, W)``).
        task: "semantic" (argmax of the logits) or "instance" (masks with score above
            ``score_threshold`` painted with their class colour).
        device: where to run the model.
        num_classes: for the default palette.
        palette: ``(C, 3)`` uint8 colours, or None.
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
    return overlay_mask(denormalize(sample["image"]), label_map.cpu().numpy(), pal)


def conv_weights(model: nn.Module, count: int = 4) -> dict[str, np.ndarray]:
    """The weights of the first ``count`` convolution layers as float32 arrays, keyed ``weights/<name>``."""
    out: dict[str, np.ndarray] = {}
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d) and len(out) < count:
            out[f"weights/{name}"] = module.weight.detach().float().cpu().numpy()
    return out
