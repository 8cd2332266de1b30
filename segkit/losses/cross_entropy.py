"""Cross-entropy losses: ``ce``, ``weighted_ce``, ``topk_ce``, ``dist_penalized_ce``."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from segkit.losses.functional import _check_mode, binary_cross_entropy, cross_entropy, topk_cross_entropy
from segkit.losses.functional_distance import distance_penalized_cross_entropy
from segkit.losses.registry import LOSSES

__all__ = ["CrossEntropyLoss", "DistancePenalizedCELoss", "TopKCrossEntropyLoss", "WeightedCrossEntropyLoss"]


@LOSSES.register("ce")
class CrossEntropyLoss(nn.Module):
    """Softmax cross-entropy over valid pixels; ``ce`` in the registry.

    ``loss = sum_V w_y * CE / sum_V w_y`` (plain mean over valid pixels when ``weight`` is None). Binary
    (``mode="binary"``): sigmoid cross-entropy in log space, mean over valid pixels.

    Args:
        weight: optional per-class weights, length C (multi-class only).
        ignore_index: label excluded from the loss (255).
        label_smoothing: in [0, 1) (multi-class only).
        mode: ``"multiclass"`` or ``"binary"``.

    Shape:
        logits ``(N, C, H, W)`` float, target ``(N, H, W)`` int64; binary logits ``(N, 1, H, W)``, target
        ``(N, 1, H, W)`` or ``(N, H, W)`` in {0, 1} -> scalar.
    """

    weight: torch.Tensor | None

    def __init__(
        self,
        weight: Sequence[float] | None = None,
        ignore_index: int = 255,
        label_smoothing: float = 0.0,
        mode: str = "multiclass",
    ) -> None:
        super().__init__()
        _check_mode(mode)
        if mode == "binary" and (weight is not None or label_smoothing):
            raise ValueError("ce: binary mode takes neither weight nor label_smoothing (see weighted_ce's pos_weight)")
        self.register_buffer("weight", None if weight is None else torch.as_tensor(weight, dtype=torch.float32))
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing
        self.mode = mode

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Return the scalar loss (see the class docstring)."""
        if self.mode == "binary":
            return binary_cross_entropy(logits, target, None, self.ignore_index)
        return cross_entropy(logits, target, self.weight, self.ignore_index, self.label_smoothing)


@LOSSES.register("weighted_ce")
class WeightedCrossEntropyLoss(nn.Module):
    """Class-weighted cross-entropy; ``weighted_ce`` in the registry.

    Multi-class: ``sum_V w_y CE / sum_V w_y`` (torch's weighted mean). Binary (``mode="binary"``):
    ``-(pos_weight t log s(x) + (1 - t) log s(-x))`` averaged over valid pixels (torch's ``pos_weight``).

    Args:
        weight: per-class weights, length C (None = unweighted, i.e. ``ce``); multi-class only.
        pos_weight: weight of the positive term; binary only.
        mode: ``"multiclass"`` or ``"binary"``.
        ignore_index: label excluded from the loss (255).

    Shape:
        logits ``(N, C, H, W)``, target ``(N, H, W)`` int64; binary logits ``(N, 1, H, W)``, target
        ``(N, 1, H, W)`` or ``(N, H, W)`` in {0, 1} -> scalar.
    """

    weight: torch.Tensor | None

    def __init__(
        self,
        weight: Sequence[float] | None = None,
        pos_weight: float | None = None,
        mode: str = "multiclass",
        ignore_index: int = 255,
    ) -> None:
        super().__init__()
        _check_mode(mode)
        if mode == "binary" and weight is not None:
            raise ValueError("weighted_ce: binary mode takes pos_weight, not weight")
        if mode == "multiclass" and pos_weight is not None:
            raise ValueError("weighted_ce: multiclass mode takes weight, not pos_weight")
        self.register_buffer("weight", None if weight is None else torch.as_tensor(weight, dtype=torch.float32))
        self.pos_weight = pos_weight
        self.mode = mode
        self.ignore_index = ignore_index

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Return the scalar loss (see the class docstring)."""
        if self.mode == "binary":
            return binary_cross_entropy(logits, target, self.pos_weight, self.ignore_index)
        if self.weight is not None and self.weight.numel() != logits.shape[1]:
            raise ValueError(f"weight: expected {logits.shape[1]} class weights, got {self.weight.numel()}")
        return cross_entropy(logits, target, self.weight, self.ignore_index)


@LOSSES.register("topk_ce")
class TopKCrossEntropyLoss(nn.Module):
    """Mean of the ``k`` % largest per-pixel CE values over the batch's valid pixels (at least 1); ``topk_ce``.

    Bootstrapped / online-hard-example CE (Wu et al. 2016). ``k=100`` equals ``ce``.

    Args:
        k: percentage of valid pixels kept (10).
        mode: ``"multiclass"`` or ``"binary"`` (sigmoid CE).
        ignore_index: label excluded from the loss (255).

    Shape:
        logits ``(N, C, H, W)``, target ``(N, H, W)`` int64 -> scalar.
    """

    def __init__(self, k: float = 10.0, mode: str = "multiclass", ignore_index: int = 255) -> None:
        super().__init__()
        _check_mode(mode)
        self.k, self.mode, self.ignore_index = k, mode, ignore_index

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Return the scalar loss (see the class docstring)."""
        return topk_cross_entropy(logits, target, self.k, self.mode, self.ignore_index)


@LOSSES.register("dist_penalized_ce")
class DistancePenalizedCELoss(nn.Module):
    """Distance-map-penalised CE (Caliva et al. 2019); ``dist_penalized_ce`` in the registry.

    ``mean_V (1 + phi) CE`` with ``phi = 1 - d_c / max(d_c)`` per image and class region (see
    ``segkit.losses.functional_distance.distance_penalized_cross_entropy``). ``extra_inputs = ("penalty_map",)``:
    when the batch holds ``"penalty_map"`` (add it in the data workers with
    ``WithDistanceMaps(dataset, num_classes, keys=("penalty_map",))``) the Trainer passes it and no distance
    transform runs in the step; otherwise the maps are computed from the target (one exact transform per image
    and class present, on the CPU).

    Args:
        mode: ``"multiclass"`` or ``"binary"``.
        ignore_index: label excluded from the loss (255).

    Shape:
        logits ``(N, C, H, W)``, target ``(N, H, W)`` int64, optional ``penalty_map`` ``(N, H, W)`` -> scalar.
    """

    extra_inputs = ("penalty_map",)

    def __init__(self, mode: str = "multiclass", ignore_index: int = 255) -> None:
        super().__init__()
        _check_mode(mode)
        self.mode, self.ignore_index = mode, ignore_index

    def forward(
        self, logits: torch.Tensor, target: torch.Tensor, penalty_map: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Return the scalar loss (see the class docstring)."""
        return distance_penalized_cross_entropy(logits, target, self.mode, self.ignore_index, penalty_map)
