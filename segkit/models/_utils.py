"""Helpers shared by the model families: input padding to a stride multiple."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["PadToMultiple"]


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

    def forward(self, x: torch.Tensor):  # type: ignore[no-untyped-def]
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


def _crop(out, h: int, w: int, hp: int, wp: int):  # type: ignore[no-untyped-def]
    if isinstance(out, torch.Tensor):
        return out[..., :h, :w] if out.shape[-2:] == (hp, wp) else out
    if isinstance(out, (list, tuple)):
        return type(out)(_crop(o, h, w, hp, wp) for o in out)
    if isinstance(out, dict):
        return {k: _crop(v, h, w, hp, wp) for k, v in out.items()}
    return out
