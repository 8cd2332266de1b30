"""Experiment trackers: a 4-method protocol (``log_params``, ``log_metrics``, ``log_images``, ``close``)."""

from __future__ import annotations

import inspect
from typing import Any

# Each module registers its tracker; optional packages are imported only when a tracker is built.
from segkit.tracking import jsonl, mlflow, neptune, tensorboard  # noqa: F401
from segkit.tracking.base import GuardedTracker, MissingExtraError, Tracker, TrackerWarning
from segkit.tracking.registry import TRACKERS

__all__ = ["TRACKERS", "GuardedTracker", "MissingExtraError", "Tracker", "TrackerWarning", "build_tracker"]


def build_tracker(spec: Any, run_dir: str | None = None) -> GuardedTracker:
    """Build a tracker from a name, a ``{name: ..., <kwargs>}`` mapping, or wrap a tracker object.

    The result is a :class:`GuardedTracker`: if its backend raises during the run, the error is
    reported once (a warning naming the tracker) and the tracker disabled; training never stops for it.
    Errors while *building* (an unknown name, a missing optional package) are raised, since they are
    configuration mistakes.

    Args:
        spec: ``"jsonl"``, ``{"name": "neptune", "mode": "offline"}`` or an object with the Tracker methods.
        run_dir: the run folder, given to trackers whose constructor takes ``run_dir``.

    Returns:
        The guarded tracker.

    Raises:
        UnknownNameError: no tracker of that name (the message lists the known ones).
        MissingExtraError: the tracker's optional package is missing (the message names the extra).
        ValueError: a mapping without ``name``.

    Example:
        >>> t = build_tracker({"name": "jsonl"}, run_dir="runs/exp1")  # doctest: +SKIP
    """
    if isinstance(spec, GuardedTracker):
        return spec
    if isinstance(spec, str):
        spec = {"name": spec}
    if isinstance(spec, dict):
        kwargs = dict(spec)
        if "name" not in kwargs:
            raise ValueError(f"trackers: a tracker mapping needs a 'name' key, got {spec!r}")
        name = kwargs.pop("name")
        builder = TRACKERS.get(name)
        if run_dir is not None and "run_dir" in inspect.signature(builder).parameters:
            kwargs.setdefault("run_dir", run_dir)
        return GuardedTracker(builder(**kwargs), name=name)
    return GuardedTracker(spec)
