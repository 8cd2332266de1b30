"""``mlflow``: a live tracker on your own machine or server (SQLite store ``mlflow.db`` by default)."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from segkit.tracking.base import flatten_params, histogram_figure_array, require, to_rgb_array
from segkit.tracking.registry import TRACKERS

# This module is segkit.tracking.mlflow; ``import mlflow`` below is absolute and gets the real package.
# Never run this file as a script (its folder would go first on sys.path and shadow the package).

__all__ = ["DEFAULT_TRACKING_URI", "MlflowTracker", "resolve_tracking_uri"]

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"


def resolve_tracking_uri(tracking_uri: str | None = None) -> str:
    """Return the tracking URI: the argument, else ``MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db``.

    MLflow 3's own default is the SQLite file ``mlflow.db`` in the working directory (a ``./mlruns``
    *file* store now needs ``MLFLOW_ALLOW_FILE_STORE=true``), so segkit uses the same embedded store;
    artifacts go to ``./mlruns`` beside it.
    """
    return tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


@TRACKERS.register("mlflow")
class MlflowTracker:
    """Log a run to MLflow with ``MlflowClient`` (no global ``mlflow.start_run`` state).

    What is logged: the resolved config, flattened (``model.name``, ``train.lr``) as params and whole as
    the artifact ``config.json``; every metric at its step; images as ``images/<name>_<step>.png``;
    weight histograms as the figure ``weights/histograms_<step>.png``; files given to
    :meth:`log_artifact` (the Trainer gives the best checkpoint) under ``checkpoints/``.
    See them with ``mlflow ui --backend-store-uri sqlite:///mlflow.db``.

    Args:
        tracking_uri: e.g. ``"sqlite:///mlflow.db"``, ``"http://mlflow.internal:5000"``; default
            ``MLFLOW_TRACKING_URI`` or ``sqlite:///mlflow.db`` (see :func:`resolve_tracking_uri`).
        experiment: experiment name (created if missing).
        run_name: run name; default the run folder's name.
        tags: run tags.
        run_dir: the segkit run folder (its name is the default run name; recorded as a tag).

    Raises:
        MissingExtraError: ``mlflow`` is not installed (``pip install "segkit[mlflow]"``).
    """

    def __init__(
        self,
        tracking_uri: str | None = None,
        experiment: str = "segkit",
        run_name: str | None = None,
        tags: Mapping[str, str] | None = None,
        run_dir: str | None = None,
    ) -> None:
        require("mlflow", "mlflow", "the mlflow tracker")
        from mlflow import MlflowClient

        self.tracking_uri = resolve_tracking_uri(tracking_uri)
        self.client = MlflowClient(tracking_uri=self.tracking_uri)
        found = self.client.get_experiment_by_name(experiment)
        experiment_id = found.experiment_id if found is not None else self.client.create_experiment(experiment)
        all_tags = dict(tags or {})
        if run_dir is not None:
            all_tags.setdefault("segkit.run_dir", str(Path(run_dir).resolve()))
        name = run_name or (Path(run_dir).name if run_dir else None)
        self.run_id: str = self.client.create_run(experiment_id, run_name=name, tags=all_tags).info.run_id
        self.experiment_id = experiment_id

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log the flattened config as params (values cut to MLflow's limit) and ``config.json``."""
        from mlflow.entities import Param

        try:
            from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH as limit
        except ImportError:  # pragma: no cover - older MLflow
            limit = 500
        flat = [Param(k, str(v)[:limit]) for k, v in flatten_params(params).items()]
        for i in range(0, len(flat), 100):  # log_batch takes at most 100 params per call
            self.client.log_batch(self.run_id, params=flat[i : i + 100])
        self.client.log_dict(self.run_id, dict(params), "config.json")

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Log every metric at ``step`` in one batch (NaN kept; MLflow stores it)."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, int(step)) for k, v in metrics.items()]
        for i in range(0, len(batch), 1000):
            self.client.log_batch(self.run_id, metrics=batch[i : i + 1000])

    def log_images(self, images: Mapping[str, Any], step: int) -> None:
        """Store each image as the artifact ``images/<name>_<step>.png`` (``/`` in names becomes ``_``)."""
        for key, image in images.items():
            name = key.replace("/", "_")
            self.client.log_image(self.run_id, to_rgb_array(image), artifact_file=f"images/{name}_{int(step)}.png")

    def log_histograms(self, values: Mapping[str, np.ndarray], step: int) -> None:
        """Store a figure of one histogram per layer as ``weights/histograms_<step>.png``."""
        if values:
            self.client.log_image(
                self.run_id, histogram_figure_array(values), artifact_file=f"weights/histograms_{int(step)}.png"
            )

    def log_artifact(self, path: str | Path, artifact_path: str = "checkpoints") -> None:
        """Copy a file (e.g. ``best.pt``) into the run's artifacts under ``artifact_path``."""
        self.client.log_artifact(self.run_id, str(path), artifact_path=artifact_path)

    def close(self) -> None:
        """Mark the run finished."""
        self.client.set_terminated(self.run_id, "FINISHED")
