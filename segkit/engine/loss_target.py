"""The mask a loss compares with logits the network gives at its own size (a model with ``input_scale`` < 1)."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["target_at_network_size"]


def target_at_network_size(target: torch.Tensor, outputs: Any, model: nn.Module) -> torch.Tensor:
    """``target`` sampled (nearest) at the size of the training logits of a model that downscales its input.

    A real-time model built with ``input_scale`` s < 1 returns its training outputs at ``(floor(H*s),
    floor(W*s))``, the size it predicts at, so the loss (and the upsampling before it, a third of a step at
    s = 0.5) runs on a quarter of the pixels; evaluation still returns logits at the image size. Anything
    else is returned unchanged, so a genuine size mismatch still reaches the loss's own error.

    Args:
        target: ``(N, H, W)`` integer class map (ignore values kept: nearest sampling makes no new value).
        outputs: the model's training outputs: a tensor ``(N, C, h, w)`` or a tuple/list whose first element is.
        model: the unwrapped model (its ``input_scale`` attribute, 1.0 when absent).

    Returns:
        ``(N, h, w)`` of ``target``'s dtype when the logits are the network-size ones, else ``target`` itself.
    """
    scale = float(getattr(model, "input_scale", 1.0))
    logits = outputs[0] if isinstance(outputs, (tuple, list)) else outputs
    if scale == 1.0 or not isinstance(logits, torch.Tensor) or target.dim() != 3:
        return target
    height, width = target.shape[-2:]
    size = tuple(logits.shape[-2:])
    if size == (height, width) or size != (math.floor(height * scale), math.floor(width * scale)):
        return target
    # "nearest-exact" samples the centre of each source block (index floor((i + 0.5) / s)).
    sampled = F.interpolate(target[:, None].float(), size=size, mode="nearest-exact")
    return sampled[:, 0].to(target.dtype)
