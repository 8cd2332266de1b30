"""``jsonl``: metrics appended as JSON lines to ``metrics.jsonl`` in the run folder (always on)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from segkit.tracking.registry import TRACKERS

__all__ = ["JsonlTracker", "read_jsonl"]


@TRACKERS.register("jsonl")
class JsonlTracker:
    """Append one JSON object per ``log_metrics`` call to ``<run_dir>/metrics.jsonl``.

    Each line is ``{"step": int, "<key>": float, ...}``; NaN is written as null. Params go to
    ``params.json``; images are saved as PNG under ``images/``.

    Args:
        run_dir: the run folder (created if missing).
        filename: name of the metrics file.
    """

    def __init__(self, run_dir: str | Path, filename: str = "metrics.jsonl") -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.run_dir / filename
        self._fh = open(self.path, "a", encoding="utf-8")

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Write ``params.json`` (overwriting)."""
        (self.run_dir / "params.json").write_text(json.dumps(params, indent=2, default=str))

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Append one line with ``step`` and the metrics."""
        row: dict[str, Any] = {"step": int(step)}
        for k, v in metrics.items():
            f = float(v)
            row[k] = None if math.isnan(f) or math.isinf(f) else f
        self._fh.write(json.dumps(row) + "\n")
        self._fh.flush()

    def log_images(self, images: Mapping[str, Any], step: int) -> None:
        """Save each image as ``images/<name>_<step>.png``."""
        from PIL import Image

        folder = self.run_dir / "images"
        folder.mkdir(exist_ok=True)
        for name, img in images.items():
            pil = img if isinstance(img, Image.Image) else Image.fromarray(np.asarray(img))
            pil.save(folder / f"{name.replace('/', '_')}_{step}.png")

    def close(self) -> None:
        """Close the file."""
        if not self._fh.closed:
            self._fh.close()


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Read a ``metrics.jsonl`` file into a list of dicts (null -> NaN)."""
    rows = []
    for line in Path(path).read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            rows.append({k: (float("nan") if v is None else v) for k, v in row.items()})
    return rows
