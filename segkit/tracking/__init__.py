"""Experiment trackers: a 4-method protocol (``log_params``, ``log_metrics``, ``log_images``, ``close``)."""

from __future__ import annotations

from typing import Any

from segkit.registry import Registry
from segkit.tracking.base import Tracker

TRACKERS: Registry[Tracker] = Registry("trackers")

from segkit.tracking import jsonl  # noqa: E402,F401

__all__ = ["TRACKERS", "Tracker", "build_tracker"]


def build_tracker(spec: Any, run_dir: str | None = None) -> Tracker:
    """Build a tracker from a name, a ``{name: ..., <kwargs>}`` mapping, or pass a tracker object through.

    Args:
        spec: ``"jsonl"``, ``{"name": "neptune", "mode": "offline"}`` or an object with the Tracker methods.
        run_dir: the run folder, given to trackers whose constructor takes ``run_dir``.

    Returns:
        The tracker.
    """
    if isinstance(spec, str):
        spec = {"name": spec}
    if isinstance(spec, dict):
        kwargs = dict(spec)
        name = kwargs.pop("name")
        import inspect

        builder = TRACKERS.get(name)
        if run_dir is not None and "run_dir" in inspect.signature(builder).parameters:
            kwargs.setdefault("run_dir", run_dir)
        return builder(**kwargs)
    return spec
