"""Helpers shared by the model families: input padding to a stride multiple, download errors, cache folders."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from segkit.checkpoint import CheckpointError

__all__ = [
    "PadToMultiple",
    "WeightsUnavailableError",
    "download_guard",
    "hf_cache_dir",
    "torch_cache_dir",
]


class PadToMultiple(nn.Module):
    """Wrap a model that needs H and W divisible by ``multiple``: pad the input, crop the output back.

    Padding is reflective at the bottom/right edges so the crop keeps the original pixel grid.

    Args:
        model: the wrapped network; ``model(x)`` returns a tensor or a tuple/list/dict of tensors
            whose spatial size equals the padded input size (others are passed through).
        multiple: required divisor of H and W (32 for a 5-stage encoder).

    Shape:
        input ``(N, C, H, W)`` with any H, W; outputs cropped to ``(..., H, W)``.
    """

    def __init__(self, model: nn.Module, multiple: int = 32) -> None:
        super().__init__()
        self.model = model
        self.multiple = multiple

    def forward(self, x: torch.Tensor) -> Any:
        h, w = x.shape[-2:]
        ph = (-h) % self.multiple
        pw = (-w) % self.multiple
        if ph or pw:
            mode = "reflect" if ph < h and pw < w else "replicate"
            x = F.pad(x, (0, pw, 0, ph), mode=mode)
        out = self.model(x)
        if not (ph or pw):
            return out
        return _crop(out, h, w, h + ph, w + pw)


def _crop(out: Any, h: int, w: int, hp: int, wp: int) -> Any:
    if isinstance(out, torch.Tensor):
        return out[..., :h, :w] if out.shape[-2:] == (hp, wp) else out
    if isinstance(out, (list, tuple)):
        return type(out)(_crop(o, h, w, hp, wp) for o in out)
    if isinstance(out, dict):
        return {k: _crop(v, h, w, hp, wp) for k, v in out.items()}
    return out


class WeightsUnavailableError(CheckpointError):
    """Pretrained weights could not be downloaded and are not cached; the message says what, where, and the fix.

    Subclasses ``CheckpointError`` so the CLI reports it as one line.
    """


@contextlib.contextmanager
def download_guard(what: str, source: str, cache: str) -> Iterator[None]:
    """Turn a network failure while fetching pretrained weights into one ``WeightsUnavailableError``.

    Args:
        what: the weights asked for, e.g. ``"encoder_weights='imagenet' for resnet34"``.
        source: where they are downloaded from (Hugging Face Hub, download.pytorch.org, ...).
        cache: the local cache folder that was searched.

    Raises:
        WeightsUnavailableError: the wrapped block raised an ``OSError`` (``URLError``, requests'
            ``ConnectionError``, huggingface_hub's ``LocalEntryNotFoundError`` all are) or a
            huggingface_hub error; the urllib/requests traceback is dropped.
    """
    try:
        yield
    except WeightsUnavailableError:
        raise
    except Exception as exc:  # noqa: BLE001 -- filtered just below; anything else is re-raised untouched
        if not (isinstance(exc, OSError) or type(exc).__module__.startswith(("huggingface_hub", "requests", "urllib"))):
            raise
        raise WeightsUnavailableError(
            f"could not get {what}: not in the local cache ({cache}) and the download from {source} failed "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'no detail'}). "
            f"Offline? Build with random weights (None) and pass weights='/path/to/checkpoint.pt' "
            f"(a segkit checkpoint or a plain state dict), or copy the file into the cache."
        ) from None


def torch_cache_dir() -> str:
    """Return the folder where ``torch.hub`` keeps downloaded checkpoints."""
    return os.path.join(torch.hub.get_dir(), "checkpoints")


def hf_cache_dir() -> str:
    """Return the Hugging Face Hub cache folder (smp and timm weights)."""
    try:
        from huggingface_hub.constants import HF_HUB_CACHE

        return str(HF_HUB_CACHE)
    except ImportError:  # pragma: no cover - huggingface_hub comes with smp
        return "~/.cache/huggingface/hub"
