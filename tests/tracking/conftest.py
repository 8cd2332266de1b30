"""Fixtures for the tracker tests: a short run to log, readers for TensorBoard, one shared MLflow database."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from torch import nn

NEPTUNE_QUIET = {
    "capture_hardware_metrics": False,
    "capture_stdout": False,
    "capture_stderr": False,
    "capture_traceback": False,
    "git_ref": False,
    "source_files": [],
}


class TinyNet(nn.Module):
    """Three convolutions and a head, no batch norm."""

    def __init__(self, num_classes: int = 4) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())
        self.head = nn.Conv2d(8, num_classes, 1)

    def forward(self, x):
        return self.head(self.body(x))


class ShortRun:
    """What every tracker test logs: params, 3 metric steps, 1 image, 1 histogram (and what to expect back)."""

    params = {"model": {"name": "unet", "encoder": "resnet18"}, "train": {"lr": 0.01, "epochs": 3}, "seed": 7}
    steps = [0, 10, 20]
    losses = [1.25, 0.8125, 0.4375]
    ious = [0.1, 0.35, 0.6]

    def __init__(self) -> None:
        rng = np.random.default_rng(0)
        self.image = rng.integers(0, 256, size=(24, 32, 3), dtype=np.uint8)
        self.hist = {"body.0.weight": rng.normal(0.0, 0.2, size=216).astype(np.float32)}

    def write(self, tracker) -> None:
        tracker.log_params(self.params)
        for step, loss, iou in zip(self.steps, self.losses, self.ious):
            tracker.log_metrics({"train/loss": loss, "val/miou": iou}, step)
        tracker.log_images({"val/overlay": self.image}, 20)
        tracker.log_histograms(self.hist, 20)
        tracker.close()


@pytest.fixture
def short_run() -> ShortRun:
    return ShortRun()


@pytest.fixture
def tiny_net() -> TinyNet:
    return TinyNet()


def _read_tensorboard(log_dir):
    """Load every event file under ``log_dir`` with TensorBoard's own EventAccumulator (keep all entries)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "images": 0, "histograms": 0, "tensors": 0})
    acc.Reload()
    return acc


@pytest.fixture
def read_tensorboard():
    return _read_tensorboard


@pytest.fixture
def neptune_quiet() -> dict:
    """init_run kwargs that keep the Neptune client from starting monitoring threads."""
    return dict(NEPTUNE_QUIET)


@pytest.fixture(scope="session")
def _mlflow_template(tmp_path_factory):
    """Create the MLflow SQLite schema once (its migrations take seconds); tests copy the file."""
    from mlflow import MlflowClient

    folder = tmp_path_factory.mktemp("mlflow_template")
    MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}").search_experiments()
    return folder / "mlflow.db"


@pytest.fixture
def mlflow_uri(_mlflow_template, tmp_path, monkeypatch):
    """An absolute ``sqlite:///.../mlflow.db`` URI in tmp_path (cwd is tmp_path, so artifacts land there too)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    shutil.copy(_mlflow_template, tmp_path / "mlflow.db")
    return f"sqlite:///{tmp_path / 'mlflow.db'}"
