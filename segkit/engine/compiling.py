"""``compile=True | "auto"``: ``torch.compile`` (inductor) of the trained model, or eager with one line saying why."""

from __future__ import annotations

import functools
import time

import torch
from torch import nn

from segkit.config import COMPILE_CHOICES

__all__ = ["compile_module", "compile_probe", "resolve_compile", "uncompiled"]


@functools.cache
def _probe(device: str) -> tuple[str | None, float]:
    start = time.perf_counter()
    try:
        fn = torch.compile(lambda x: (x * 2.0).sin().sum())
        x = torch.ones(4, device=device, requires_grad=True)
        fn(x).backward()  # forward and backward kernels: a C++ compiler on CPU, triton on CUDA
    except Exception as exc:  # whatever stops inductor here (no compiler, no headers, no triton, Python too new)
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        return f"{type(exc).__name__}: {first}", time.perf_counter() - start
    return None, time.perf_counter() - start


def compile_probe(device: torch.device) -> tuple[str | None, float]:
    """Check once per process and device that ``torch.compile`` (inductor) works here, by compiling and running
    a tiny function forward and backward. Tests monkeypatch this function.

    Args:
        device: where the model will run.

    Returns:
        ``(reason, seconds)``: None when it works, else why not (the error's type and first line); the seconds
        the check took the first time (mostly inductor's one-time start-up, which the model's compile would pay).
    """
    return _probe(str(device))


def _not_compilable(model: nn.Module, task: str) -> str | None:
    """Why ``model`` runs eager whatever ``compile`` says, or None."""
    from torchvision.models.detection.generalized_rcnn import GeneralizedRCNN

    if task == "instance" or isinstance(model, GeneralizedRCNN):
        return (
            f"compile not supported for this model ({type(model).__name__}: detection models have "
            f"data-dependent shapes), running eager"
        )
    return None


def resolve_compile(
    compile: bool | str, device: torch.device, model: nn.Module, task: str = "semantic"
) -> tuple[bool, str | None]:
    """Decide whether the Trainer compiles ``model``.

    ``True`` compiles; ``"auto"`` compiles on CUDA only (on a CPU the first step takes 30-60 s to compile a
    U-Net for a 1.1-1.5x faster step: worth it for long runs only, so it is asked for with ``True``). Detection
    models (Mask R-CNN, task ``"instance"``) and environments where ``compile_probe`` fails run eager.

    Args:
        compile: False, True or ``"auto"``.
        device: the training device.
        model: the model (unwrapped).
        task: the Trainer's task.

    Returns:
        ``(compiled, line)``: whether to compile, and the one line to print when the answer is not the one asked
        for (or None).

    Raises:
        ValueError: ``compile`` is none of the accepted values.
    """
    if compile not in COMPILE_CHOICES or not isinstance(compile, (bool, str)):
        raise ValueError(f"compile: expected False, True or 'auto', got {compile!r}")
    if compile is False:
        return False, None
    if compile == "auto" and device.type != "cuda":
        return (
            False,
            f"compile=auto: eager on {device.type} (compiling costs 30-60 s for small gains; compile=True forces it)",
        )
    reason = _not_compilable(model, task)
    if reason is not None:
        return False, reason
    failure, _ = compile_probe(device)
    if failure is not None:
        return False, f"compile: torch.compile cannot run here ({failure}), running eager"
    return True, None


def compile_module(model: nn.Module) -> nn.Module:
    """``torch.compile(model)`` (inductor, default mode); the wrapper shares the model's parameters.

    Under DDP, pass the DDP-wrapped model: torch's DDP notes recommend compiling after wrapping, so that
    ``DDPOptimizer`` splits the graph at the gradient buckets (communication overlapped with backward).
    """
    return torch.compile(model)  # type: ignore[return-value]


def uncompiled(model: nn.Module) -> nn.Module:
    """The module inside a ``torch.compile`` wrapper (or the model itself): its ``state_dict`` has no
    ``_orig_mod.`` prefix."""
    inner = getattr(model, "_orig_mod", None)
    return inner if isinstance(inner, nn.Module) else model
