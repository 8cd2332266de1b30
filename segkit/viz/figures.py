"""Matplotlib figures without pyplot's global state: create, save as PNG, convert to an array."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["figure_to_array", "new_figure", "save_figure"]


def new_figure(figsize: tuple[float, float] = (6.0, 4.0), dpi: int = 100) -> Any:
    """Return a ``matplotlib.figure.Figure`` on the Agg canvas (no pyplot, no window, thread-safe).

    Figures made this way are freed by the garbage collector; nothing needs ``plt.close``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Any, path: str | Path) -> Path:
    """Write ``fig`` as a PNG to ``path`` (folders created) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", bbox_inches="tight")
    return path


def figure_to_array(fig: Any) -> np.ndarray:
    """Render ``fig`` and return it as an ``(H, W, 3)`` uint8 RGB array (for trackers' ``log_images``)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()
