"""Pictures of predictions: colour overlays of class masks."""

from segkit.viz.overlay import colorize, overlay_mask

__all__ = ["colorize", "overlay_mask"]
