"""The tracker protocol every experiment tracker implements, and a wrapper that keeps a failing one from stopping training."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

_log = logging.getLogger(__name__)

__all__ = [
    "GuardedTracker",
    "MissingExtraError",
    "Tracker",
    "TrackerWarning",
    "flatten_params",
    "histogram_figure_array",
    "require",
    "to_rgb_array",
]


@runtime_checkable
class Tracker(Protocol):
    """What the Trainer calls on a tracker; trackers are not callbacks.

    - ``log_params(params)``: the resolved config / hyper-parameters (nested dict of plain values).
    - ``log_metrics(metrics, step)``: scalar floats keyed like ``"train/loss"``, at a global step.
    - ``log_images(images, step)``: name -> ``(H, W, 3)`` uint8 array (or PIL image).
    - ``close()``: flush and release.

    Optional methods, called only when a tracker has them:

    - ``log_histograms(values, step)``: name -> 1-D array of values (e.g. the weights of the first
      convolution layers, see :func:`segkit.viz.histograms.weight_histograms`).
    - ``log_artifact(path)``: a file to keep with the run (e.g. the best checkpoint).
    """

    def log_params(self, params: Mapping[str, Any]) -> None: ...

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None: ...

    def log_images(self, images: Mapping[str, Any], step: int) -> None: ...

    def close(self) -> None: ...


class MissingExtraError(ImportError):
    """An optional dependency of a tracker is not installed; the message names the extra to install."""


def require(module: str, extra: str, what: str) -> Any:
    """Import an optional dependency, or raise an error naming the segkit extra that installs it.

    Args:
        module: the module to import (``"mlflow"``, ``"neptune"``, ``"torch.utils.tensorboard"``).
        extra: the segkit extra (``"mlflow"`` for ``pip install "segkit[mlflow]"``).
        what: who needs it, for the message (``"the mlflow tracker"``).

    Returns:
        The imported module.

    Raises:
        MissingExtraError: the module (or one it needs) cannot be imported.
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"{what} needs the {module.split('.')[0]!r} package, which is not installed "
            f'({exc}); install it with: pip install "segkit[{extra}]"'
        ) from exc


class TrackerWarning(RuntimeWarning):
    """A tracker failed and was disabled; training goes on with the other trackers."""


class GuardedTracker:
    """Wrap a tracker so an error in its backend is reported once and the tracker then disabled.

    Every call (the 4 protocol methods and any optional one such as ``log_histograms`` or
    ``log_artifact``) is forwarded; the first exception is reported as a :class:`TrackerWarning`
    (also printed to stderr) naming the tracker and the error, and later calls are skipped, so a
    tracker that loses its server or disk never stops a training run. Optional methods exist on the
    wrapper exactly when the wrapped tracker has them, so ``hasattr(t, "log_histograms")`` still works.

    Args:
        tracker: the tracker to wrap.
        name: its name in messages (default: the class name).

    Attributes:
        tracker: the wrapped tracker.
        failed: the exception that disabled it, or None.
    """

    def __init__(self, tracker: Any, name: str | None = None) -> None:
        self.tracker = tracker
        self.name = name or type(tracker).__name__
        self.failed: BaseException | None = None

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        if self.failed is not None:
            return None
        try:
            return getattr(self.tracker, method)(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - any backend error must not stop training
            self.failed = exc
            message = (
                f"tracker {self.name!r} failed in {method}() with {type(exc).__name__}: {exc}; "
                "it is disabled for the rest of the run, training continues with the other trackers"
            )
            _log.warning(f"segkit: warning: {message}")
            warnings.warn(message, TrackerWarning, stacklevel=3)
            if method != "close":
                # Release what the backend holds (files, threads) without reporting a second error.
                try:
                    self.tracker.close()
                except Exception:  # noqa: BLE001
                    pass
            return None

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Forward ``log_params``."""
        self._call("log_params", params)

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Forward ``log_metrics``."""
        self._call("log_metrics", metrics, step)

    def log_images(self, images: Mapping[str, Any], step: int) -> None:
        """Forward ``log_images``."""
        self._call("log_images", images, step)

    def close(self) -> None:
        """Forward ``close`` (skipped when the tracker already failed and was closed)."""
        self._call("close")

    def __getattr__(self, attr: str) -> Any:
        # Only reached for attributes the wrapper lacks: optional methods and plain attributes.
        if attr.startswith("__") or attr in ("tracker", "name", "failed"):
            raise AttributeError(attr)
        value = getattr(self.tracker, attr)
        if not callable(value):
            return value

        def guarded(*args: Any, **kwargs: Any) -> Any:
            return self._call(attr, *args, **kwargs)

        guarded.__name__ = attr
        guarded.__doc__ = getattr(value, "__doc__", None)
        return guarded

    def __repr__(self) -> str:
        state = "disabled" if self.failed is not None else "active"
        return f"GuardedTracker({self.tracker!r}, {state})"


def flatten_params(params: Mapping[str, Any], sep: str = ".", prefix: str = "") -> dict[str, Any]:
    """Flatten a nested config into ``{"model.name": "unet", "train.lr": 0.01, ...}``.

    Lists and tuples stay as values (trackers write them as strings).

    Args:
        params: nested mapping.
        sep: separator between levels.
        prefix: prepended to every key.

    Returns:
        The flat mapping.
    """
    flat: dict[str, Any] = {}
    for key, value in params.items():
        full = f"{prefix}{sep}{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            flat.update(flatten_params(value, sep, full))
        else:
            flat[full] = value
    return flat


def to_rgb_array(image: Any) -> Any:
    """Return an ``(H, W, 3)`` uint8 array from a PIL image or an array (grey, RGBA or float in [0, 1]).

    Raises:
        ValueError: not a 2-D or 3-D image.
    """
    import numpy as np

    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        arr = arr.astype(np.float64)
        scale = 255.0 if arr.size and np.nanmax(arr) <= 1.0 else 1.0
        arr = np.clip(np.nan_to_num(arr * scale), 0, 255).astype(np.uint8)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise ValueError(f"expected an (H, W), (H, W, 3) or (H, W, 4) image, got shape {arr.shape}")
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    return np.ascontiguousarray(arr[..., :3])


def histogram_figure_array(values: Mapping[str, Any]) -> Any:
    """Render :func:`segkit.viz.histograms.plot_weight_histograms` of ``values`` to an RGB uint8 array."""
    from segkit.viz.histograms import figure_to_array, plot_weight_histograms

    return figure_to_array(plot_weight_histograms(values, n=len(values)))
