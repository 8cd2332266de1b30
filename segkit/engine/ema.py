"""Exponential moving average of the weights, with a warm-up of the decay for short runs and fine-tunes."""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

__all__ = ["ModelEMA"]


class ModelEMA:
    """Exponential moving average of a model's weights: ``ema = d * ema + (1 - d) * w``.

    Floating-point parameters and buffers are averaged; integer buffers (BatchNorm's
    ``num_batches_tracked``) are copied. With ``warmup`` the decay of update ``t`` is
    ``decay * (1 - exp(-t / warmup))`` (as Ultralytics' ``ModelEMA``): the first updates follow the model
    closely, so after a few hundred steps the average is not still dominated by the initial weights (a
    fine-tune's random head). The step count comes from the caller (the Trainer's ``global_step``), so it
    needs no state of its own and resumes exactly.

    Args:
        model: the model being trained (unwrapped, not DDP).
        decay: the decay once warmed up, in (0, 1), e.g. 0.999.
        warmup: time constant of the warm-up in updates; 0 disables it (constant decay).
    """

    def __init__(self, model: nn.Module, decay: float, warmup: float = 0.0) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema: expected a decay in (0, 1), got {decay}")
        if warmup < 0:
            raise ValueError(f"ema_warmup: expected >= 0 updates, got {warmup}")
        self.decay = float(decay)
        self.warmup = float(warmup)
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    def decay_at(self, step: int | None) -> float:
        """The decay used by update number ``step`` (1 for the first update); ``decay`` without warm-up."""
        if not self.warmup or step is None:
            return self.decay
        return self.decay * (1.0 - math.exp(-max(step, 0) / self.warmup))

    @torch.no_grad()
    def update(self, model: nn.Module, step: int | None = None, skip: torch.Tensor | None = None) -> None:
        """Blend the current weights of ``model`` into the average.

        Args:
            model: the trained model (unwrapped).
            step: this update's number, from 1 (sets the warm-up's decay).
            skip: a 0-dim tensor on the model's device, 1.0 when this update must leave the average as it
                is (a step skipped on the device without a host sync), else 0.0; None: always update.
        """
        decay = self.decay_at(step)
        ema_state = self.module.state_dict()
        floats_ema, floats_new = [], []
        for key, value in model.state_dict().items():
            target = ema_state[key]
            if target.dtype.is_floating_point:
                floats_ema.append(target)
                floats_new.append(value.detach())
            elif skip is None:
                target.copy_(value)
            else:
                target.copy_(torch.where(skip > 0, target, value))
        if not floats_ema:
            return
        if skip is None:
            torch._foreach_lerp_(floats_ema, floats_new, 1.0 - decay)
        else:
            weight = (1.0 - skip) * (1.0 - decay)  # a 0-dim tensor: no host sync
            torch._foreach_lerp_(floats_ema, floats_new, weight)  # type: ignore[call-overload]

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The averaged weights."""
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore averaged weights."""
        self.module.load_state_dict(state)
