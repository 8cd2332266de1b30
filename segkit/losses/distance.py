"""Distance-map losses ``boundary`` and ``hausdorff_dt``, and ``WithDistanceMaps`` to precompute maps in the workers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from segkit.losses.functional import _check_mode
from segkit.losses.functional_distance import (
    boundary_loss,
    distance_field,
    distance_penalty,
    hausdorff_dt_loss,
    onehot_target,
    signed_distance_map,
)
from segkit.losses.registry import LOSSES

__all__ = ["BoundaryLoss", "HausdorffDTLoss", "WithDistanceMaps"]

MAP_KEYS = ("dist_map", "hd_dist_map", "penalty_map")


@LOSSES.register("boundary")
class BoundaryLoss(nn.Module):
    """Boundary loss (Kervadec et al. 2019): mean of ``p_k * phi_k`` with ``phi`` the signed distance map of the
    one-hot target (positive outside, <= 0 inside, 0 on the object boundary); ``boundary`` in the registry.

    The maps are constants. ``extra_inputs = ("dist_map",)``: when the batch holds ``"dist_map"`` (add it in the
    data workers with ``WithDistanceMaps(dataset, num_classes)``) the Trainer passes it and nothing is computed
    in the step; otherwise the maps of the kept classes are computed from the target (two exact transforms per
    image and class present, on the CPU: ~2x the cost of the loss itself at 8x19x256x256, see bench/RESULTS.md).

    Args:
        include_background: keep class 0 in the mean (False).
        mode: ``"multiclass"`` or ``"binary"`` (the sigmoid channel alone).
        ignore_index: label excluded from the loss (255); ignored pixels belong to no class.

    Shape:
        logits ``(N, C, H, W)``, target ``(N, H, W)`` int64, optional ``dist_map`` ``(N, C, H, W)`` -> scalar.
    """

    extra_inputs = ("dist_map",)

    def __init__(self, include_background: bool = False, mode: str = "multiclass", ignore_index: int = 255) -> None:
        super().__init__()
        _check_mode(mode)
        self.include_background, self.mode, self.ignore_index = include_background, mode, ignore_index

    def forward(self, logits: torch.Tensor, target: torch.Tensor, dist_map: torch.Tensor | None = None) -> torch.Tensor:
        """Return the scalar loss (see the class docstring)."""
        return boundary_loss(logits, target, dist_map, self.include_background, self.mode, self.ignore_index)


@LOSSES.register("hausdorff_dt")
class HausdorffDTLoss(nn.Module):
    """HD-DT loss (Karimi & Salcudean 2019): ``mean[(p - t)^2 (d_p^alpha + d_t^alpha)]``; ``hausdorff_dt``.

    ``d_t`` / ``d_p``: distance of each pixel to the other region of the target / of the prediction thresholded
    at ``p > 0.5`` (zero for empty or full masks), constants. ``extra_inputs = ("hd_dist_map",)``: precompute
    ``d_t`` in the workers with ``WithDistanceMaps(dataset, num_classes, keys=("hd_dist_map",))``; ``d_p`` is
    always computed in the step (exact transforms of the thresholded prediction on the CPU, the dominant cost of
    this loss).

    Args:
        alpha: exponent of the distances (2.0).
        include_background: keep class 0 (False).
        mode: ``"multiclass"`` or ``"binary"`` (the sigmoid channel alone).
        ignore_index: label excluded from the loss (255).

    Shape:
        logits ``(N, C, H, W)``, target ``(N, H, W)`` int64, optional ``hd_dist_map`` ``(N, C, H, W)`` -> scalar.
    """

    extra_inputs = ("hd_dist_map",)

    def __init__(
        self, alpha: float = 2.0, include_background: bool = False, mode: str = "multiclass", ignore_index: int = 255
    ) -> None:
        super().__init__()
        _check_mode(mode)
        self.alpha, self.include_background, self.mode, self.ignore_index = (
            alpha,
            include_background,
            mode,
            ignore_index,
        )

    def forward(
        self, logits: torch.Tensor, target: torch.Tensor, hd_dist_map: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Return the scalar loss (see the class docstring)."""
        return hausdorff_dt_loss(
            logits, target, hd_dist_map, self.alpha, self.include_background, self.mode, self.ignore_index
        )


class WithDistanceMaps(Dataset):
    """Wrap a semantic dataset so each sample also carries the distance maps of its ``mask``.

    Runs in the DataLoader workers, so the training step does no distance transform for the target. The default
    collate stacks the extra keys, and the Trainer passes them to a loss that names them in ``extra_inputs``.

    Args:
        dataset: yields dicts with ``"mask"`` ``(H, W)`` int64 (binary datasets: values {0, 1} and
            ``num_classes=1``).
        num_classes: C of the logits (1 for a binary problem).
        keys: maps to add: ``"dist_map"`` (signed map for ``boundary``), ``"hd_dist_map"`` (target field
            for ``hausdorff_dt``), each ``(C, H, W)`` float32, and/or ``"penalty_map"`` (``(H, W)`` float32
            ``phi`` of ``dist_penalized_ce``).
        ignore_index: label that belongs to no class (255).

    Example:
        >>> train = WithDistanceMaps(build_dataset("shapes", split="train"), num_classes=4)
        >>> Trainer(model, "boundary", train, ...)  # doctest: +SKIP
    """

    def __init__(
        self, dataset: Any, num_classes: int, keys: Sequence[str] = ("dist_map",), ignore_index: int = 255
    ) -> None:
        unknown = set(keys) - set(MAP_KEYS)
        if unknown:
            raise ValueError(f"keys: expected a subset of {MAP_KEYS}, got {sorted(unknown)}")
        self.dataset, self.num_classes, self.keys, self.ignore_index = dataset, num_classes, tuple(keys), ignore_index

    def __len__(self) -> int:
        return len(self.dataset)

    def __getattr__(self, name: str) -> Any:
        # Delegate dataset attributes (num_classes, class_names, ...) to the wrapped dataset.
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = dict(self.dataset[index])
        if "mask" not in sample:
            raise ValueError(f"WithDistanceMaps: sample {index} has no 'mask' (keys: {sorted(sample)})")
        mask = torch.as_tensor(sample["mask"])
        if self.num_classes == 1:
            masks = (mask == 1).numpy()[None]
        else:
            masks = onehot_target(mask, self.num_classes, self.ignore_index)
        if "dist_map" in self.keys:
            sample["dist_map"] = torch.from_numpy(signed_distance_map(masks))
        if "hd_dist_map" in self.keys:
            sample["hd_dist_map"] = torch.from_numpy(distance_field(masks))
        if "penalty_map" in self.keys:  # binary datasets: regions of classes 0 and 1
            sample["penalty_map"] = torch.from_numpy(
                distance_penalty(mask, max(self.num_classes, 2), self.ignore_index)
            )
        return sample
