"""A weighted sum of losses that also reports each term, for ``build_loss("ce+dice")``."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

__all__ = ["CombinedLoss"]


class CombinedLoss(nn.Module):
    """Weighted sum ``sum_k w_k * loss_k(logits, target)``.

    Args:
        terms: name -> loss module.
        weights: name -> weight (same keys as ``terms``).
    """

    def __init__(self, terms: Mapping[str, nn.Module], weights: Mapping[str, float]) -> None:
        super().__init__()
        if set(terms) != set(weights):
            raise ValueError(f"CombinedLoss: terms {sorted(terms)} and weights {sorted(weights)} differ")
        self.terms = nn.ModuleDict(dict(terms))
        self.weights = dict(weights)
        # The union of the terms' extra batch inputs, so the Trainer passes e.g. ``dist_map`` to
        # "ce+boundary"; each term then receives only the inputs it declared.
        self.extra_inputs = tuple(dict.fromkeys(k for t in self.terms.values() for k in getattr(t, "extra_inputs", ())))

    def forward_terms(
        self, logits: torch.Tensor, target: torch.Tensor, **kwargs: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Return each weighted term by name (their sum is ``forward``'s value).

        ``kwargs`` (extra batch inputs such as ``dist_map``) go only to the terms whose
        ``extra_inputs`` name them.
        """
        out = {}
        for name, loss in self.terms.items():
            own = {k: v for k, v in kwargs.items() if k in getattr(loss, "extra_inputs", ())}
            out[name] = self.weights[name] * loss(logits, target, **own)
        return out

    def forward(self, logits: torch.Tensor, target: torch.Tensor, **kwargs: torch.Tensor) -> torch.Tensor:
        """Return the weighted sum, a scalar tensor."""
        return torch.stack(list(self.forward_terms(logits, target, **kwargs).values())).sum()

    def extra_repr(self) -> str:
        return " + ".join(f"{w:g}*{n}" for n, w in self.weights.items())
