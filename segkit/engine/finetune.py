"""Fine-tuning controls: frozen parts (no gradient, no decay, norm statistics held), per-part learning rates,
no weight decay on norms and biases, and the warm-up of parts that are unfrozen during the run."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from torch import nn

__all__ = [
    "group_lrs",
    "hold_frozen_norms",
    "parameter_groups",
    "resolve_prefixes",
    "set_frozen",
    "unfreeze_factors",
]

_NORMS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm)


def _matches(name: str, prefix: str) -> bool:
    return prefix == "" or name == prefix or name.startswith(prefix + ".")


def resolve_prefixes(model: nn.Module, prefixes: str | Iterable[str] | None, what: str) -> list[str]:
    """Check module-name prefixes against ``model`` and return them as full parameter-name prefixes.

    A prefix names a submodule (``"encoder"``, ``"decoder.blocks.0"``, ``"backbone.body.layer1"``). Models
    wrapped by segkit (``PadToMultiple``'s ``model.`` level) accept the inner names too: ``"encoder"``
    resolves to ``"model.encoder"``.

    Args:
        model: the model (unwrapped, not DDP).
        prefixes: one prefix, several, or None (none).
        what: the option's name, for messages (``"freeze"``, ``"lr_mult"``).

    Returns:
        The resolved prefixes, in the order given.

    Raises:
        ValueError: a prefix that names no parameter; the message lists the top-level module names.
    """
    if prefixes is None:
        return []
    items = [prefixes] if isinstance(prefixes, str) else list(prefixes)
    names = [n for n, _ in model.named_parameters()]
    out = []
    for prefix in items:
        for candidate in (prefix, f"model.{prefix}"):
            if any(_matches(n, candidate) for n in names):
                out.append(candidate)
                break
        else:
            top = sorted({n.split(".")[0] for n in names})
            inner = sorted({n.split(".")[1] for n in names if n.startswith("model.") and n.count(".") > 1})
            listed = ", ".join(inner or top)
            raise ValueError(f"{what}: {prefix!r} names no part of the model; its parts are: {listed}")
    return out


def set_frozen(model: nn.Module, prefixes: Sequence[str], frozen: bool) -> int:
    """Set ``requires_grad = not frozen`` on every parameter under ``prefixes``; return how many changed."""
    count = 0
    for name, p in model.named_parameters():
        if any(_matches(name, q) for q in prefixes) and p.requires_grad == frozen:
            p.requires_grad_(not frozen)
            count += 1
    return count


def hold_frozen_norms(model: nn.Module, prefixes: Sequence[str]) -> None:
    """Put the normalisation layers under ``prefixes`` in eval mode (call after every ``model.train()``), so
    a frozen BatchNorm neither moves its running statistics nor normalises with batch statistics."""
    for name, module in model.named_modules():
        if isinstance(module, _NORMS) and any(_matches(name, q) for q in prefixes):
            module.eval()


def _no_decay_names(model: nn.Module) -> set[str]:
    names = set()
    for module_name, module in model.named_modules():
        for pname, p in module.named_parameters(recurse=False):
            full = f"{module_name}.{pname}" if module_name else pname
            if isinstance(module, _NORMS) or pname == "bias" or p.ndim <= 1:
                names.add(full)
    return names


def parameter_groups(
    model: nn.Module,
    lr: float,
    weight_decay: float,
    lr_mult: Mapping[str, float] | None = None,
    norm_weight_decay: float | None = 0.0,
    frozen: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """Optimizer parameter groups: one per (part, decay, frozen) combination present in the model.

    Args:
        model: the model (unwrapped).
        lr: the base learning rate.
        weight_decay: decay of weights (convolution and linear kernels).
        lr_mult: resolved prefix -> learning-rate multiplier (the longest matching prefix wins); other
            parameters get 1.
        norm_weight_decay: decay of norm parameters, biases and other 1-d parameters (torchvision
            references' ``norm_weight_decay``); 0.0 by default; None: the same as ``weight_decay``.
        frozen: resolved prefixes of frozen parts. Their parameters are in the optimizer (so unfreezing
            needs no new optimizer) but get no gradient, hence no update and no decay.

    Returns:
        Groups for ``torch.optim`` with ``params``, ``lr`` (``lr * mult``), ``weight_decay`` and the keys
        ``name`` (e.g. ``"model.encoder"`` or ``"rest/no_decay"``), ``lr_mult`` and ``frozen``.
    """
    mults = dict(lr_mult or {})
    no_decay = _no_decay_names(model)
    norm_decay = weight_decay if norm_weight_decay is None else float(norm_weight_decay)
    groups: dict[tuple[str, bool, str], dict[str, Any]] = {}
    for name, p in model.named_parameters():
        part = max((q for q in mults if _matches(name, q)), key=len, default="")
        frozen_by = max((q for q in frozen if _matches(name, q)), key=len, default="")
        decays = name not in no_decay
        key = (part, decays, frozen_by)
        if key not in groups:
            label = (part or frozen_by or "rest") + ("" if decays else "/no_decay") + ("/frozen" if frozen_by else "")
            groups[key] = {
                "params": [],
                "lr": lr * mults.get(part, 1.0),
                "weight_decay": weight_decay if decays else norm_decay,
                "name": label,
                "lr_mult": mults.get(part, 1.0),
                "frozen": bool(frozen_by),
            }
        groups[key]["params"].append(p)
    return list(groups.values())


def unfreeze_factors(
    groups: Sequence[Mapping[str, Any]], unfreeze_step: int | None, warmup_steps: int
) -> list[Callable[[int], float]]:
    """Per-group multipliers of the schedule: 1 for trainable groups; for frozen ones 0 before
    ``unfreeze_step`` and a linear ramp to 1 over ``warmup_steps`` after it (their own short warm-up).

    Args:
        groups: from ``parameter_groups``.
        unfreeze_step: optimizer step at which frozen parts join, or None (they stay frozen: factor 0).
        warmup_steps: length of their warm-up.

    Returns:
        One function of the step per group.
    """

    def frozen_factor(i: int) -> float:
        if unfreeze_step is None or i < unfreeze_step:
            return 0.0
        return min(1.0, (i - unfreeze_step + 1) / max(1, warmup_steps))

    return [frozen_factor if g.get("frozen") else (lambda i: 1.0) for g in groups]


def group_lrs(optimizer: Any) -> dict[str, float]:
    """The learning rates to log: ``train/lr`` (the base part's: the first trainable group with multiplier
    1) and, when the groups differ (``lr_mult``, frozen parts), ``train/lr/<part>`` for each part."""
    groups = optimizer.param_groups
    base = next((g for g in groups if g.get("lr_mult", 1.0) == 1.0 and not g.get("frozen")), groups[0])
    out = {"train/lr": float(base["lr"])}
    parts = {str(g.get("name", i)).split("/")[0]: float(g["lr"]) for i, g in enumerate(groups)}
    if len(set(parts.values())) > 1 or any(g.get("frozen") for g in groups):
        out.update({f"train/lr/{name}": lr for name, lr in parts.items()})
    return out
