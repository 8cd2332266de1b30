"""``tensorboard``: scalars, images, weight histograms and the config as text in TensorBoard event files."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from segkit.tracking.base import require, to_rgb_array
from segkit.tracking.registry import TRACKERS

__all__ = ["TensorBoardTracker"]


@TRACKERS.register("tensorboard")
class TensorBoardTracker:
    """Write a run as TensorBoard event files with ``torch.utils.tensorboard.SummaryWriter``.

    View with ``tensorboard --logdir runs`` (each run folder is one run in the UI).

    Args:
        run_dir: the run folder; events are written to ``log_dir`` or, by default, to ``run_dir`` itself.
        log_dir: where to write the event files (overrides ``run_dir``).
        flush_secs: how often the writer flushes to disk.

    Raises:
        MissingExtraError: ``tensorboard`` is not installed (``pip install "segkit[tensorboard]"``).
    """

    def __init__(
        self, run_dir: str | Path = "runs/tensorboard", log_dir: str | Path | None = None, flush_secs: int = 30
    ) -> None:
        tb = require("torch.utils.tensorboard", "tensorboard", "the tensorboard tracker")
        self.log_dir = Path(log_dir if log_dir is not None else run_dir)
        self.writer = tb.SummaryWriter(log_dir=str(self.log_dir), flush_secs=flush_secs)

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Write the config as a text entry ``config`` (JSON, shown as a code block)."""
        text = json.dumps(params, indent=2, default=str)
        # Four-space indent makes TensorBoard's markdown render it as a code block.
        self.writer.add_text("config", "\n".join("    " + line for line in text.splitlines()), 0)

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Add one scalar per key at ``step``."""
        for key, value in metrics.items():
            self.writer.add_scalar(key, float(value), int(step))

    def log_images(self, images: Mapping[str, Any], step: int) -> None:
        """Add each image (``(H, W, 3)`` uint8 array or PIL image) at ``step``."""
        for key, image in images.items():
            self.writer.add_image(key, to_rgb_array(image), int(step), dataformats="HWC")

    def log_histograms(self, values: Mapping[str, np.ndarray], step: int) -> None:
        """Add one histogram per entry (TensorBoard's HISTOGRAMS tab) under ``weights/<name>``."""
        for key, arr in values.items():
            self.writer.add_histogram(f"weights/{key}", np.asarray(arr, dtype=np.float32).reshape(-1), int(step))

    def close(self) -> None:
        """Flush and close the event file."""
        self.writer.close()
