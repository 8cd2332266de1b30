"""`segkit runs export` replays a JSONL run or a Neptune offline run into MLflow and TensorBoard, values intact."""

from __future__ import annotations

import numpy as np
import pytest

from segkit.cli import main
from segkit.tracking.export import _png_to_array, read_neptune_offline
from segkit.tracking.jsonl import JsonlTracker

# Steps repeat (a per-step row and an epoch row share the step), as the Trainer writes them.
ROWS = [
    (0, {"train/loss": 1.3862943611198906, "train/lr": 0.01}),
    (5, {"train/loss": 0.9123456789012345, "train/lr": 0.0075}),
    (5, {"val/miou": 0.4142135623730951, "epoch": 0.0}),
    (10, {"train/loss": 0.5772156649015329, "train/lr": 0.005}),
]


@pytest.fixture
def jsonl_run(tmp_path):
    run = tmp_path / "runs" / "exp1"
    tracker = JsonlTracker(run)
    tracker.log_params({"model": {"name": "unet"}, "train": {"lr": 0.01}})
    for step, values in ROWS:
        tracker.log_metrics(values, step)
    image = np.arange(16 * 20 * 3, dtype=np.uint8).reshape(16, 20, 3)
    tracker.log_images({"val/overlay": image}, 5)
    tracker.close()
    return run, image


def _expected(key):
    return [(step, values[key]) for step, values in ROWS if key in values]


def test_export_jsonl_to_mlflow_identical_values(jsonl_run, mlflow_uri, tmp_path, capsys):
    from mlflow import MlflowClient

    run, image = jsonl_run
    assert main(["runs", "export", str(run), "--to", "mlflow", "--uri", mlflow_uri, "--experiment", "replay"]) == 0
    assert "4 metric rows, 1 images" in capsys.readouterr().out
    client = MlflowClient(tracking_uri=mlflow_uri)
    (mrun,) = client.search_runs([client.get_experiment_by_name("replay").experiment_id])
    assert mrun.info.run_name == "exp1"
    assert mrun.data.params == {"model.name": "unet", "train.lr": "0.01"}
    for key in ("train/loss", "train/lr", "val/miou", "epoch"):
        history = sorted(client.get_metric_history(mrun.info.run_id, key), key=lambda m: m.step)
        assert [(m.step, m.value) for m in history] == _expected(key)  # exact float64 equality
    client.download_artifacts(mrun.info.run_id, "images", str(tmp_path / "dl"))
    np.testing.assert_array_equal(_png_to_array(tmp_path / "dl" / "images" / "val_overlay_5.png"), image)


def test_export_jsonl_to_tensorboard_identical_values(jsonl_run, tmp_path, read_tensorboard):
    run, image = jsonl_run
    out = tmp_path / "tb"
    assert main(["runs", "export", str(run), "--to", "tensorboard", "--out", str(out)]) == 0
    acc = read_tensorboard(out)
    for key in ("train/loss", "train/lr", "val/miou", "epoch"):
        got = [(e.step, e.value) for e in acc.Scalars(key)]
        # TensorBoard stores scalars as float32: identical to the float32 of each logged value.
        assert got == [(s, float(np.float32(v))) for s, v in _expected(key)]
    (img,) = acc.Images("val_overlay")
    np.testing.assert_array_equal(_png_to_array(img.encoded_image_string), image)


def test_export_neptune_offline_run_to_tensorboard(tmp_path, monkeypatch, short_run, neptune_quiet, read_tensorboard):
    from segkit.tracking import build_tracker

    monkeypatch.chdir(tmp_path)
    short_run.write(build_tracker({"name": "neptune", "mode": "offline", **neptune_quiet}))
    record = read_neptune_offline(tmp_path / ".neptune")
    assert record.params == short_run.params
    assert [(s, m["train/loss"]) for s, m in record.metrics if "train/loss" in m] == list(
        zip(short_run.steps, short_run.losses)
    )
    assert main(["runs", "export", ".neptune", "--to", "tensorboard", "--out", "tb"]) == 0
    acc = read_tensorboard(tmp_path / "tb")
    assert [(e.step, e.value) for e in acc.Scalars("val/miou")] == [
        (s, float(np.float32(v))) for s, v in zip(short_run.steps, short_run.ious)
    ]
    np.testing.assert_array_equal(_png_to_array(acc.Images("val/overlay")[0].encoded_image_string), short_run.image)
    assert len(acc.Images("weights/histograms")) == 1


def test_export_rejects_a_folder_that_is_not_a_run(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["runs", "export", str(tmp_path / "empty"), "--to", "tensorboard"]) == 2
    assert "no Neptune offline run here" in capsys.readouterr().err
    assert main(["runs", "export", str(tmp_path / "missing"), "--to", "mlflow"]) == 2
    assert "no such run folder" in capsys.readouterr().err
