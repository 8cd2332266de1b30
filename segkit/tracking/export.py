"""Replay a recorded run (a segkit run folder or a Neptune offline folder) into another tracker."""

from __future__ import annotations

import base64
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from segkit.tracking.jsonl import read_jsonl

__all__ = ["ExportError", "RunRecord", "export_run", "read_neptune_offline", "read_run", "read_segkit_run"]

# Neptune namespaces written by the client itself, not by the training code.
_NEPTUNE_SYSTEM = ("sys", "monitoring", "source_code", "segkit")
_TARGETS = ("tensorboard", "mlflow")


class ExportError(ValueError):
    """The folder is not a run segkit can read, or the target is unknown."""


@dataclass
class RunRecord:
    """A run read back from disk, in logging order.

    Attributes:
        name: a name for the run (the folder name).
        params: the logged config (nested).
        metrics: ``(step, {key: value})`` in the order they were logged.
        images: ``(name, step, (H, W, 3) uint8 array)``.
    """

    name: str
    params: dict[str, Any] = field(default_factory=dict)
    metrics: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    images: list[tuple[str, int, np.ndarray]] = field(default_factory=list)


def _png_to_array(data: bytes | Path) -> np.ndarray:
    from PIL import Image

    source = io.BytesIO(data) if isinstance(data, bytes) else data
    with Image.open(source) as img:
        return np.asarray(img.convert("RGB"))


def read_segkit_run(run_dir: str | Path) -> RunRecord:
    """Read a segkit run folder: ``metrics.jsonl``, ``params.json`` and ``images/<name>_<step>.png``.

    Args:
        run_dir: the folder the ``jsonl`` tracker wrote.

    Returns:
        The run. Image names have ``/`` written as ``_`` (as the jsonl tracker saved them).
    """
    run_dir = Path(run_dir)
    record = RunRecord(name=run_dir.resolve().name)
    if (run_dir / "params.json").is_file():
        record.params = json.loads((run_dir / "params.json").read_text())
    for row in read_jsonl(run_dir / "metrics.jsonl"):
        step = int(row.pop("step", 0))
        record.metrics.append((step, {k: float(v) for k, v in row.items()}))
    for png in sorted((run_dir / "images").glob("*.png")):
        match = re.fullmatch(r"(.+)_(\d+)", png.stem)
        if match:
            record.images.append((match.group(1), int(match.group(2)), _png_to_array(png)))
    record.images.sort(key=lambda item: (item[1], item[0]))
    return record


def _neptune_run_folder(path: Path) -> Path:
    """Resolve ``.neptune``, ``.neptune/offline`` or a run folder to the one run folder inside."""
    if any(path.glob("data-*.log")):
        return path
    runs = sorted(p for p in path.rglob("run__*") if p.is_dir() and any(p.glob("data-*.log")))
    if len(runs) == 1:
        return runs[0]
    if not runs:
        raise ExportError(f"{path}: no Neptune offline run here (no data-*.log files)")
    listing = "\n  ".join(str(r) for r in runs)
    raise ExportError(f"{path} holds {len(runs)} Neptune runs; pass one of them:\n  {listing}")


def read_neptune_offline(path: str | Path) -> RunRecord:
    """Read a run written by the neptune 1.x client in offline mode (``.neptune/offline/run__<id>__...``).

    The folder holds ``metadata.json`` and ``data-<n>.log`` files, one JSON operation per line
    (``{"obj": {"type": "LogFloats", "path": [...], "values": [{"value", "step", "ts"}]}, "version", "at"}``).
    Read here: ``Assign*`` under ``parameters`` (the config, as the article logs it), ``LogFloats`` (metric
    series; a missing step becomes the value's index in its series) and ``LogImages`` (base64 PNG). The
    client's own namespaces (``sys``, ``monitoring``, ``source_code``) are left out.

    Args:
        path: a run folder, or ``.neptune`` / ``.neptune/offline`` holding exactly one run.

    Returns:
        The run; metric keys and image names are the Neptune paths joined with ``/``.

    Raises:
        ExportError: no run, several runs, or an unreadable operation line.
    """
    folder = _neptune_run_folder(Path(path))
    record = RunRecord(name=folder.name)
    counts: dict[str, int] = {}
    logs = sorted(folder.glob("data-*.log"), key=lambda p: int(re.sub(r"\D", "", p.stem) or 0))
    for log in logs:
        for lineno, line in enumerate(log.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                op = json.loads(line)["obj"]
                kind, parts = op["type"], [str(p) for p in op["path"]]
            except (ValueError, KeyError, TypeError) as exc:
                raise ExportError(f"{log}:{lineno}: not a Neptune operation ({exc})") from exc
            if parts[0] in _NEPTUNE_SYSTEM:
                continue
            key = "/".join(parts)
            if kind.startswith("Assign") and parts[0] == "parameters" and "value" in op:
                node = record.params
                for part in parts[1:-1]:
                    node = node.setdefault(part, {})
                node[parts[-1]] = op["value"]
            elif kind == "LogFloats":
                for item in op["values"]:
                    step = item.get("step")
                    step = counts.get(key, 0) if step is None else int(step)
                    counts[key] = counts.get(key, 0) + 1
                    record.metrics.append((step, {key: float(item["value"])}))
            elif kind == "LogImages":
                for item in op["values"]:
                    step = item.get("step")
                    data = base64.b64decode(item["value"]["data"])
                    record.images.append((key, 0 if step is None else int(step), _png_to_array(data)))
    return record


def read_run(path: str | Path) -> RunRecord:
    """Read a segkit run folder or a Neptune offline run folder, whichever ``path`` is.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ExportError: it is neither kind of run.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such run folder")
    if (path / "metrics.jsonl").is_file():
        return read_segkit_run(path)
    if path.is_dir():
        return read_neptune_offline(path)
    raise ExportError(f"{path}: not a run folder (expected metrics.jsonl or a Neptune offline run)")


def export_run(
    path: str | Path,
    to: str,
    uri: str | None = None,
    out: str | Path | None = None,
    experiment: str = "segkit",
) -> tuple[RunRecord, str]:
    """Replay a recorded run into a tracker: params, then metrics and images in step order.

    Args:
        path: a segkit run folder (``metrics.jsonl``) or a Neptune offline run folder.
        to: ``"tensorboard"`` or ``"mlflow"``.
        uri: MLflow tracking URI (default as :class:`~segkit.tracking.mlflow.MlflowTracker`).
        out: TensorBoard log folder (default ``runs/export/<run name>``).
        experiment: MLflow experiment name.

    Returns:
        The run that was replayed, and where it went (the TensorBoard folder, or the MLflow run id and URI).

    Raises:
        ExportError: unknown target or unreadable run.
        MissingExtraError: the target's package is missing.
    """
    if to not in _TARGETS:
        raise ExportError(f"runs export: unknown target {to!r}; choose one of {', '.join(_TARGETS)}")
    record = read_run(path)
    tracker: Any
    if to == "tensorboard":
        from segkit.tracking.tensorboard import TensorBoardTracker

        tracker = TensorBoardTracker(log_dir=Path(out) if out else Path("runs", "export", record.name))
        destination = f"TensorBoard folder {tracker.log_dir}"
    else:
        from segkit.tracking.mlflow import MlflowTracker

        tracker = MlflowTracker(
            tracking_uri=uri,
            experiment=experiment,
            run_name=record.name,
            tags={"segkit.exported_from": str(Path(path).resolve())},
        )
        destination = f"MLflow run {tracker.run_id} (experiment {experiment!r}) at {tracker.tracking_uri}"
    try:
        if record.params:
            tracker.log_params(record.params)
        for step, values in record.metrics:
            tracker.log_metrics(values, step)
        for name, step, image in record.images:
            tracker.log_images({name: image}, step)
    finally:
        tracker.close()
    return record, destination
