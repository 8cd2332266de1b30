"""A failing tracker never stops training; a missing optional package names its extra; weight histograms."""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest
import torch

from segkit import Trainer
from segkit.tracking import GuardedTracker, MissingExtraError, TrackerWarning, build_tracker
from segkit.tracking.jsonl import read_jsonl
from segkit.viz.histograms import figure_to_array, plot_weight_histograms, weight_histograms


class FlakyBackend:
    """Works for the first ``log_metrics`` call, then raises like a backend that lost its server."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def log_params(self, params):
        self.calls.append("log_params")

    def log_metrics(self, metrics, step):
        self.calls.append("log_metrics")
        if self.calls.count("log_metrics") >= 2:
            raise ConnectionError("server went away")

    def log_images(self, images, step):
        self.calls.append("log_images")

    def log_histograms(self, values, step):
        self.calls.append("log_histograms")

    def close(self):
        self.calls.append("close")


def test_backend_raising_mid_run_is_reported_once_and_training_finishes(tmp_path, tiny_shapes, tiny_net, capsys):
    flaky = FlakyBackend()
    trainer = Trainer(
        tiny_net,
        "ce",
        tiny_shapes("train", 8, 32),
        tiny_shapes("val", 4, 32),
        epochs=2,
        batch_size=4,
        lr=0.01,
        out_dir=tmp_path,
        log_every=1,
        trackers=[flaky],
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        metrics = trainer.fit()
    assert metrics["epoch"] == 1  # both epochs ran
    ours = [w for w in caught if issubclass(w.category, TrackerWarning)]
    assert len(ours) == 1
    assert "FlakyBackend" in str(ours[0].message) and "server went away" in str(ours[0].message)
    assert capsys.readouterr().err.count("server went away") == 1
    # Disabled after the failure: closed once, never called again.
    assert flaky.calls.count("log_metrics") == 2 and flaky.calls[-1] == "close" and flaky.calls.count("close") == 1
    # The always-on jsonl tracker kept logging every step and epoch.
    rows = read_jsonl(tmp_path / "metrics.jsonl")
    assert [r["epoch"] for r in rows if "epoch" in r] == [0, 1]


def test_guard_forwards_optional_methods_only_when_present():
    flaky = FlakyBackend()
    guarded = build_tracker(flaky)
    assert isinstance(guarded, GuardedTracker) and build_tracker(guarded) is guarded
    assert hasattr(guarded, "log_histograms") and not hasattr(guarded, "log_artifact")
    guarded.log_histograms({"w": np.zeros(3)}, 0)
    assert flaky.calls == ["log_histograms"]


@pytest.mark.parametrize(
    ("name", "module", "extra"),
    [
        ("mlflow", "mlflow", "mlflow"),
        ("neptune", "neptune", "neptune"),
        ("tensorboard", "torch.utils.tensorboard", "tensorboard"),
    ],
)
def test_missing_optional_package_names_the_extra(monkeypatch, tmp_path, name, module, extra):
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` raise ImportError
    with pytest.raises(MissingExtraError, match=rf'pip install "segkit\[{extra}\]"'):
        build_tracker({"name": name}, run_dir=str(tmp_path))


def test_weight_histograms_are_the_first_conv_weights(tiny_net):
    values = weight_histograms(tiny_net, n=2)
    assert list(values) == ["body.0.weight", "body.2.weight"]
    np.testing.assert_array_equal(values["body.2.weight"], tiny_net.body[2].weight.detach().numpy().reshape(-1))
    assert len(weight_histograms(tiny_net, n=10)) == 3  # only three convolutions exist
    wrapped = torch.nn.Sequential(tiny_net)
    assert list(weight_histograms(wrapped, n=1)) == ["0.body.0.weight"]


def test_plot_weight_histograms_one_panel_per_layer(tiny_net):
    fig = plot_weight_histograms(tiny_net, n=3)
    axes = fig.get_axes()
    assert [ax.get_title() for ax in axes] == ["body.0.weight", "body.2.weight", "head.weight"]
    counts = [sum(p.get_height() for p in ax.patches) for ax in axes]
    assert counts == [3 * 8 * 9, 8 * 8 * 9, 8 * 4]  # every weight lands in a bin
    assert figure_to_array(fig).shape[2] == 3
    with pytest.raises(ValueError, match="no convolution"):
        plot_weight_histograms(torch.nn.Linear(2, 2))
