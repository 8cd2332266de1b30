"""The ``TRACKERS`` registry, in a leaf module: the family's modules import it to register their members, and the
package's ``__init__`` imports them and it (no module imports the package that imports it back)."""

from __future__ import annotations

from segkit.registry import Registry
from segkit.tracking.base import Tracker

__all__ = ["TRACKERS"]

TRACKERS: Registry[Tracker] = Registry("trackers")
