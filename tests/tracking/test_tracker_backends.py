"""Each tracker writes a short run and the test reads it back with the backend's own reader."""

from __future__ import annotations

import base64
import json
import socket
import warnings

import numpy as np
import pytest

from segkit.tracking import TrackerWarning, build_tracker
from segkit.tracking.export import _png_to_array


# ---------------------------------------------------------------- TensorBoard
def test_tensorboard_short_run_read_back_with_event_accumulator(tmp_path, short_run, read_tensorboard):
    short_run.write(build_tracker("tensorboard", run_dir=str(tmp_path)))
    acc = read_tensorboard(tmp_path)
    for key, expected in (("train/loss", short_run.losses), ("val/miou", short_run.ious)):
        events = acc.Scalars(key)
        assert [e.step for e in events] == short_run.steps
        np.testing.assert_array_equal([e.value for e in events], np.float32(expected))
    (image,) = acc.Images("val/overlay")
    assert image.step == 20
    np.testing.assert_array_equal(_png_to_array(image.encoded_image_string), short_run.image)
    (hist,) = acc.Histograms("weights/body.0.weight")
    values = short_run.hist["body.0.weight"].astype(np.float64)
    assert hist.step == 20
    assert hist.histogram_value.num == values.size
    assert hist.histogram_value.min == pytest.approx(values.min())
    assert hist.histogram_value.max == pytest.approx(values.max())
    assert hist.histogram_value.sum == pytest.approx(values.sum(), abs=1e-4)
    assert sum(hist.histogram_value.bucket) == values.size
    text = acc.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert json.loads(text.replace("\n    ", "\n").strip()) == short_run.params


# ------------------------------------------------------------------- Neptune
def _neptune_ops(tmp_path):
    """Parse the offline folder's data-*.log lines directly (the format neptune 1.x writes)."""
    (run_dir,) = (tmp_path / ".neptune" / "offline").iterdir()
    meta = json.loads((run_dir / "metadata.json").read_text())
    ops = [
        json.loads(line)["obj"] for log in sorted(run_dir.glob("data-*.log")) for line in log.read_text().splitlines()
    ]
    return run_dir, meta, ops


def test_neptune_offline_short_run_read_back_from_offline_folder(tmp_path, monkeypatch, short_run, neptune_quiet):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NEPTUNE_API_TOKEN", raising=False)
    short_run.write(build_tracker({"name": "neptune", "mode": "offline", **neptune_quiet}))
    _, meta, ops = _neptune_ops(tmp_path)
    assert meta["mode"] == "offline"
    params = {
        tuple(o["path"]): o["value"] for o in ops if o["type"].startswith("Assign") and o["path"][0] == "parameters"
    }
    assert params[("parameters", "model", "encoder")] == "resnet18"
    assert params[("parameters", "train", "lr")] == 0.01
    assert params[("parameters", "seed")] == 7
    losses = [
        (v["step"], v["value"])
        for o in ops
        if o["type"] == "LogFloats" and o["path"] == ["train", "loss"]
        for v in o["values"]
    ]
    assert losses == list(zip(short_run.steps, short_run.losses))
    images = {"/".join(o["path"]): o["values"] for o in ops if o["type"] == "LogImages"}
    assert set(images) == {"val/overlay", "weights/histograms"}
    decoded = _png_to_array(base64.b64decode(images["val/overlay"][0]["value"]["data"]))
    np.testing.assert_array_equal(decoded, short_run.image)
    figure = _png_to_array(base64.b64decode(images["weights/histograms"][0]["value"]["data"]))
    assert figure.shape[0] > 100 and figure.std() > 0  # a rendered figure, not a blank


def test_neptune_debug_mode_needs_no_account_and_writes_nothing(tmp_path, monkeypatch, short_run, neptune_quiet):
    monkeypatch.chdir(tmp_path)
    short_run.write(build_tracker({"name": "neptune", "mode": "debug", **neptune_quiet}))
    assert not (tmp_path / ".neptune" / "offline").exists() or not any((tmp_path / ".neptune" / "offline").iterdir())


def test_neptune_async_unreachable_server_warns_once_and_falls_back_offline(
    tmp_path, monkeypatch, short_run, capsys, neptune_quiet
):
    monkeypatch.chdir(tmp_path)
    with socket.socket() as s:  # a port nobody listens on: connection refused at once
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"http://127.0.0.1:{port}"
    token = base64.b64encode(json.dumps({"api_address": address, "api_url": address, "api_key": "k"}).encode()).decode()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tracker = build_tracker(
            {
                "name": "neptune",
                "mode": "async",
                "project": "ws/proj",
                "api_token": token,
                "connect_timeout": 2.0,
                **neptune_quiet,
            }
        )
        short_run.write(tracker)
    ours = [w for w in caught if issubclass(w.category, TrackerWarning)]
    assert (
        len(ours) == 1 and "cannot be reached" in str(ours[0].message) and f"127.0.0.1:{port}" in str(ours[0].message)
    )
    assert capsys.readouterr().err.count("cannot be reached") == 1
    assert tracker.mode == "offline" and tracker.failed is None
    _, _, ops = _neptune_ops(tmp_path)  # the run is kept locally, ready for `neptune sync` or `runs export`
    assert sum(len(o["values"]) for o in ops if o["path"] == ["val", "miou"]) == 3


# -------------------------------------------------------------------- MLflow
def test_mlflow_short_run_read_back_with_client(tmp_path, mlflow_uri, short_run):
    from mlflow import MlflowClient

    tracker = build_tracker({"name": "mlflow", "tracking_uri": mlflow_uri, "experiment": "exp"}, run_dir="runs/r1")
    checkpoint = tmp_path / "best.pt"
    checkpoint.write_bytes(b"weights")
    tracker.log_artifact(checkpoint)
    short_run.write(tracker)

    client = MlflowClient(tracking_uri=mlflow_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("exp").experiment_id])
    assert run.info.run_name == "r1" and run.info.status == "FINISHED"
    assert run.data.params == {
        "model.name": "unet",
        "model.encoder": "resnet18",
        "train.lr": "0.01",
        "train.epochs": "3",
        "seed": "7",
    }
    for key, expected in (("train/loss", short_run.losses), ("val/miou", short_run.ious)):
        history = sorted(client.get_metric_history(run.info.run_id, key), key=lambda m: m.step)
        assert [(m.step, m.value) for m in history] == list(zip(short_run.steps, expected))
    local = client.download_artifacts(run.info.run_id, "", str(tmp_path / "dl"))
    np.testing.assert_array_equal(_png_to_array(tmp_path / "dl" / "images" / "val_overlay_20.png"), short_run.image)
    assert _png_to_array(tmp_path / "dl" / "weights" / "histograms_20.png").std() > 0
    assert (tmp_path / "dl" / "checkpoints" / "best.pt").read_bytes() == b"weights"
    assert json.loads((tmp_path / "dl" / "config.json").read_text()) == short_run.params
    assert local


def test_mlflow_tracking_uri_resolution(monkeypatch):
    from segkit.tracking.mlflow import resolve_tracking_uri

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_tracking_uri() == "sqlite:///mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    assert resolve_tracking_uri() == "http://mlflow.example:5000"
    assert resolve_tracking_uri("sqlite:///other.db") == "sqlite:///other.db"
