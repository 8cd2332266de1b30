"""Optimizers and per-iteration learning-rate schedules (poly, cosine, step) with linear warm-up."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any, cast

import torch
from torch import nn

__all__ = ["ShapedLR", "build_optimizer", "build_scheduler", "set_schedule_length"]


def build_optimizer(
    name: str | torch.optim.Optimizer,
    params: Iterable[nn.Parameter] | Iterable[dict[str, Any]],
    lr: float,
    weight_decay: float,
    fused: bool | None = None,
) -> torch.optim.Optimizer:
    """Return an optimizer by name ("adamw", "adam", "sgd" with momentum 0.9), or pass one through.

    Args:
        name: optimizer name or an optimizer object (returned unchanged).
        params: parameters to optimise, or parameter groups (``segkit.engine.finetune.parameter_groups``).
        lr: learning rate.
        weight_decay: L2 / decoupled weight decay.
        fused: use the fused kernels of AdamW/Adam/SGD (the Trainer turns them on for CUDA, where they
            also let a non-finite step be skipped without a host sync); None = fused when every parameter is a
            floating-point tensor on the CPU or a CUDA device, else torch's default (on the CPU that is a
            per-tensor loop: U-Net resnet18's 14 M weights take 22 ms per AdamW step there, 7 ms fused).
    """
    if isinstance(name, torch.optim.Optimizer):
        return name
    key = name.lower()
    if fused is None:
        params = cast("list[Any]", list(params))  # read twice: here and by the optimizer
        groups = [g["params"] if isinstance(g, dict) else [g] for g in params]
        tensors = [p for g in groups for p in ([g] if isinstance(g, torch.Tensor) else g)]
        if tensors and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in tensors):
            fused = True
    if key == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=fused)
    if key == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=fused)
    if key == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay, fused=fused)
    raise ValueError(f"optimizer: unknown name {name!r}; known: adamw, adam, sgd (or pass an optimizer object)")


def build_scheduler(
    name: str | None,
    optimizer: torch.optim.Optimizer,
    total_iters: int,
    warmup_iters: int = 0,
    power: float = 0.9,
    step_size: int | None = None,
    gamma: float = 0.1,
    group_factors: Sequence[Callable[[int], float]] | None = None,
) -> torch.optim.lr_scheduler.LambdaLR:
    """Return a ``ShapedLR`` (a ``LambdaLR`` whose length ``set_schedule_length`` can change) stepped once per
    optimizer step.

    The factor multiplying the base lr at iteration ``i`` is ``min(1, (i + 1) / warmup_iters)`` times:
    ``(1 - i / total_iters) ** power`` for "poly", ``0.5 * (1 + cos(pi * i / total_iters))`` for
    "cosine", ``gamma ** (i // step_size)`` for "step" (``step_size`` defaults to a third of the run),
    and 1 for None.

    Args:
        name: "poly", "cosine", "step" or None.
        optimizer: the optimizer.
        total_iters: number of optimizer steps of the whole run.
        warmup_iters: linear warm-up length in steps.
        group_factors: one extra multiplier per parameter group (e.g. ``finetune.unfreeze_factors``: 0
            while a part is frozen, then its own warm-up); None: 1 for every group.
    """
    if name not in (None, "none", "poly", "cosine", "step"):
        raise ValueError(f"scheduler: unknown name {name!r}; known: poly, cosine, step, None")

    def factor(i: int, total: int) -> float:
        warm = min(1.0, (i + 1) / warmup_iters) if warmup_iters > 0 else 1.0
        t = min(i, total) / total
        if name == "poly":
            return warm * (1.0 - t) ** power
        if name == "cosine":
            return warm * 0.5 * (1.0 + math.cos(math.pi * t))
        if name == "step":
            return warm * gamma ** (i // (step_size or max(1, total // 3)))
        return warm

    if group_factors is not None and len(group_factors) != len(optimizer.param_groups):
        raise ValueError(f"group_factors: {len(group_factors)} for {len(optimizer.param_groups)} parameter groups")
    return ShapedLR(optimizer, factor, total_iters, group_factors)


class ShapedLR(torch.optim.lr_scheduler.LambdaLR):
    """The ``LambdaLR`` of ``build_scheduler``: its shape reads the run's length from ``total_iters`` at every
    step, so ``set_schedule_length`` can lay the same shape over another number of steps (``max_minutes``).

    ``total_iters`` is left out of ``state_dict``: the length belongs to whoever set it (the time plan stored
    in the checkpoint), so a run resumed without that plan keeps the length it was built with.

    Args:
        optimizer: the optimizer.
        factor: ``factor(i, total_iters)``, the multiplier of the base lr at step ``i``.
        total_iters: the initial length in optimizer steps.
        group_factors: one extra multiplier of the step per parameter group, or None.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        factor: Callable[[int, int], float],
        total_iters: int,
        group_factors: Sequence[Callable[[int], float]] | None = None,
    ) -> None:
        self.total_iters = max(1, int(total_iters))  # read by the lambdas, so set before LambdaLR's first step
        if group_factors is None:
            super().__init__(optimizer, lambda i: factor(i, self.total_iters))
            return

        def combined(extra: Callable[[int], float]) -> Callable[[int], float]:
            return lambda i: factor(i, self.total_iters) * extra(i)

        super().__init__(optimizer, [combined(extra) for extra in group_factors])

    def state_dict(self) -> dict[str, Any]:
        """LambdaLR's state without ``total_iters`` (see the class docstring)."""
        state = super().state_dict()
        state.pop("total_iters", None)
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """LambdaLR's restore; a ``total_iters`` in ``state_dict`` is ignored."""
        super().load_state_dict({k: v for k, v in state_dict.items() if k != "total_iters"})


def set_schedule_length(scheduler: Any, total_iters: int, update_lr: bool = True) -> bool:
    """Lay a ``build_scheduler`` schedule over ``total_iters`` steps from now on (warm-up, shape and
    per-group factors unchanged, as functions of the step), so it reaches its final lr at that step.

    Args:
        scheduler: the scheduler; only a ``ShapedLR`` can be re-laid.
        total_iters: the new length in optimizer steps.
        update_lr: also set every group's current lr to the new shape's value at the current step (the lr
            the next steps continue from); False when the optimizer's lr was just restored from a checkpoint.

    Returns:
        True when the schedule was re-laid, False for a scheduler of another kind (or None), left unchanged.
    """
    if not isinstance(scheduler, ShapedLR):
        return False
    scheduler.total_iters = max(1, int(total_iters))
    if update_lr:
        step = scheduler.last_epoch
        lrs = [base * fn(step) for base, fn in zip(scheduler.base_lrs, scheduler.lr_lambdas)]
        for group, lr in zip(scheduler.optimizer.param_groups, lrs):
            group["lr"] = lr
        scheduler._last_lr = lrs
    return True
