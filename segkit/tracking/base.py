"""The tracker protocol every experiment tracker implements."""

from __future__ import annotations

from typing import Any, Mapping, Protocol, runtime_checkable

__all__ = ["Tracker"]


@runtime_checkable
class Tracker(Protocol):
    """What the Trainer calls on a tracker; trackers are not callbacks.

    - ``log_params(params)``: the resolved config / hyper-parameters (nested dict of plain values).
    - ``log_metrics(metrics, step)``: scalar floats keyed like ``"train/loss"``, at a global step.
    - ``log_images(images, step)``: name -> ``(H, W, 3)`` uint8 array (or PIL image).
    - ``close()``: flush and release.
    """

    def log_params(self, params: Mapping[str, Any]) -> None: ...

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None: ...

    def log_images(self, images: Mapping[str, Any], step: int) -> None: ...

    def close(self) -> None: ...
