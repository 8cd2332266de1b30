"""Accumulation, EMA, built-in callbacks, tracker visuals and CLI resume."""

import json
import math

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from segkit import Predictor, Trainer
from segkit.checkpoint import load_checkpoint, model_weights
from segkit.engine.callbacks import Callback, EarlyStopping, ModelCheckpoint
from tests.engine._nets import TinyNet


def _weights(trainer):
    return [p.detach().clone() for p in trainer.module.parameters()]


def test_accumulate_two_batches_equals_one_double_batch(tmp_path, tiny_shapes):
    train = tiny_shapes("train", 16, 24)
    runs = []
    for batch_size, accumulate in ((4, 2), (8, 1)):
        torch.manual_seed(0)
        trainer = Trainer(
            TinyNet(),
            "ce",
            train,
            None,
            epochs=2,
            batch_size=batch_size,
            accumulate=accumulate,
            lr=0.01,
            scheduler="poly",
            out_dir=tmp_path / str(batch_size),
        )
        trainer.fit()
        assert trainer.global_step == 4
        runs.append(_weights(trainer))
    for a, b in zip(*runs):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


@pytest.mark.parametrize("warmup", [0.0, 2.0])
def test_ema_follows_its_recurrence_and_is_validated_and_saved(tmp_path, tiny_shapes, warmup):
    seen = []

    class Snapshot(Callback):
        def on_train_batch_end(self, trainer, outputs):
            seen.append(_weights(trainer))

    torch.manual_seed(0)
    model = TinyNet()
    ema = [p.detach().clone() for p in model.parameters()]
    trainer = Trainer(
        model,
        "ce",
        tiny_shapes("train", 12, 24),
        tiny_shapes("val", 4, 24),
        epochs=1,
        batch_size=4,
        lr=0.05,
        ema=0.6,
        ema_warmup=warmup,
        callbacks=[Snapshot()],
        out_dir=tmp_path,
    )
    trainer.fit()
    for step, weights in enumerate(seen, start=1):
        d = 0.6 * (1 - math.exp(-step / warmup)) if warmup else 0.6  # the decay's warm-up (Ultralytics' rule)
        ema = [d * e + (1 - d) * w for e, w in zip(ema, weights)]
    for e, p in zip(ema, trainer.ema.module.parameters()):
        torch.testing.assert_close(p, e, atol=1e-6, rtol=1e-5)
    assert trainer.eval_model is trainer.ema.module
    assert not torch.equal(next(trainer.ema.module.parameters()), next(trainer.module.parameters()))
    # Saved: the checkpoint's "ema" is the trainer's EMA state, every tensor; "model" stays the raw weights.
    ema_state, raw_state = trainer.ema.module.state_dict(), trainer.module.state_dict()
    for name in ("last.pt", "best.pt"):
        ckpt = load_checkpoint(tmp_path / name)
        assert ckpt["ema"].keys() == ema_state.keys() and ckpt["model"].keys() == raw_state.keys()
        assert all(torch.equal(ckpt["ema"][k], v) for k, v in ema_state.items()), name
        assert all(torch.equal(ckpt["model"][k], v) for k, v in raw_state.items()), name
        # Served: the one rule every consumer follows picks the EMA weights.
        served = model_weights(ckpt)
        assert all(torch.equal(served[k], v) for k, v in ema_state.items()), name


def test_ema_checkpoint_serves_the_ema_weights_through_predictor(tmp_path, tiny_shapes):
    """Predictor.from_checkpoint(best.pt) computes the logits of the trainer's EMA model, not the raw one's."""
    spec = {"name": "segnet", "num_classes": 4, "base_width": 4}
    torch.manual_seed(0)
    trainer = Trainer(
        dict(spec),
        "ce",
        tiny_shapes("train", 8, 32),
        tiny_shapes("val", 4, 32),
        epochs=1,
        batch_size=4,
        lr=0.05,
        ema=0.5,
        ema_warmup=0.0,
        out_dir=tmp_path,
        config={"model": spec},
    )
    trainer.fit()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ema_logits = trainer.ema.module.eval()(x)
        raw_logits = trainer.module.eval()(x)
    assert (ema_logits - raw_logits).abs().max() > 1e-3  # the two weight sets predict differently
    served = Predictor.from_checkpoint(tmp_path / "best.pt", device="cpu").predict_logits(x)
    torch.testing.assert_close(served, ema_logits, rtol=1e-5, atol=1e-5)


def test_trainer_predictor_serves_the_validation_weights_with_the_data_metadata(tmp_path, tiny_shapes):
    """One way to predict: trainer.predictor() is a Predictor of the EMA weights, with the data's names."""
    torch.manual_seed(0)
    data = tiny_shapes("train", 8, 32)
    trainer = Trainer(TinyNet(), "ce", data, None, epochs=1, batch_size=4, lr=0.05, ema=0.5, ema_warmup=0.0,
                      out_dir=tmp_path)  # fmt: skip
    trainer.fit()
    assert not hasattr(trainer, "predict")
    predictor = trainer.predictor()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ema_logits, raw_logits = trainer.ema.module.eval()(x), trainer.module.eval()(x)
    assert (ema_logits - raw_logits).abs().max() > 1e-3
    torch.testing.assert_close(predictor.predict_logits(x), ema_logits)
    assert torch.equal(predictor.predict(x), ema_logits.argmax(1))
    assert predictor.class_names == list(data.class_names)


def test_model_checkpoint_keeps_n_and_best_follows_the_monitor(tmp_path, tiny_shapes):
    trainer = Trainer(
        TinyNet(),
        "ce",
        tiny_shapes("train", 8, 24),
        tiny_shapes("val", 4, 24),
        epochs=3,
        batch_size=4,
        lr=0.02,
        keep_last=2,
        out_dir=tmp_path,
    )
    trainer.fit()
    assert sorted(p.name for p in tmp_path.glob("epoch_*.pt")) == ["epoch_002.pt", "epoch_003.pt"]
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines() if "val/miou" in line]
    assert load_checkpoint(tmp_path / "best.pt")["metrics"]["val/miou"] == max(r["val/miou"] for r in rows)
    assert load_checkpoint(tmp_path / "epoch_002.pt")["epoch"] == 2


def test_early_stopping_min_mode_unit():
    class Stub:
        should_stop = False

    stop = EarlyStopping("val/loss", patience=2, mode="min", min_delta=0.1)
    stub = Stub()
    for value in (1.0, 0.95, 0.5, 0.45, 0.44):  # improvements of < 0.1 do not count
        stop.on_epoch_end(stub, {"val/loss": value})
    assert stop.best == 0.5 and stop.bad_epochs == 2 and stub.should_stop
    restored = EarlyStopping("val/loss", patience=2, mode="min")
    restored.load_state_dict(stop.state_dict())
    assert (restored.best, restored.bad_epochs) == (0.5, 2)


def test_model_checkpoint_min_mode_writes_best_where_the_monitor_decreases(tmp_path, tiny_shapes):
    """On the main process, mode="min" writes best.pt exactly at the epochs where the value goes down."""
    scripted = [1.0, 0.8, 0.9, 0.5, 0.7, 0.5]  # new lows at epochs 0, 1, 3 (a tie is not an improvement)
    holder = []  # the epoch whose metrics best.pt holds, after each epoch

    class Script(Callback):
        def on_epoch_end(self, trainer, metrics):
            metrics["val/loss"] = scripted[metrics["epoch"]]

    class Record(Callback):
        def on_checkpoint(self, trainer, metrics):  # after ModelCheckpoint's (the list's order)
            holder.append(load_checkpoint(tmp_path / "best.pt")["metrics"]["epoch"])

    callback = ModelCheckpoint("val/loss", mode="min")
    trainer = Trainer(
        TinyNet(),
        "ce",
        tiny_shapes("train", 4, 24),
        None,  # no validation: the built-in checkpoint (val/miou) never writes best.pt
        epochs=len(scripted),
        batch_size=4,
        lr=0.01,
        callbacks=[Script(), callback, Record()],
        out_dir=tmp_path,
    )
    trainer.fit()
    assert trainer.is_main_process
    # Independent: the epoch of the running strict minimum.
    lows = [min(range(e + 1), key=lambda i: (scripted[i], i)) for e in range(len(scripted))]
    assert holder == lows == [0, 1, 1, 3, 3, 3]
    best = load_checkpoint(tmp_path / "best.pt")["metrics"]
    assert (best["epoch"], best["val/loss"]) == (3, min(scripted)) and callback.best == min(scripted)


def test_early_stopping_stops_every_rank_decision(tmp_path, tiny_shapes):
    trainer = Trainer(
        TinyNet(),
        "ce",
        tiny_shapes("train", 8, 24),
        tiny_shapes("val", 4, 24),
        epochs=6,
        batch_size=4,
        lr=0.0,
        early_stop_patience=2,
        out_dir=tmp_path,
    )  # lr 0: the metric never improves
    metrics = trainer.fit()
    assert metrics["epoch"] == 2  # best at epoch 0, two bad epochs, stop


class RecordingTracker:
    def __init__(self):
        self.images, self.histograms, self.metrics = [], [], []

    def log_params(self, params):
        self.params = params

    def log_metrics(self, metrics, step):
        self.metrics.append((step, dict(metrics)))

    def log_images(self, images, step):
        self.images.append((step, images))

    def log_histograms(self, values, step):
        self.histograms.append((step, values))

    def close(self):
        self.closed = True


def test_trackers_get_an_overlay_and_first_four_conv_histograms(tmp_path, tiny_shapes):
    model = nn.Sequential(*[nn.Conv2d(3 if i == 0 else 4, 4, 3, padding=1) for i in range(5)], nn.Conv2d(4, 4, 1))
    tracker = RecordingTracker()
    Trainer(
        model,
        "ce",
        tiny_shapes("train", 4, 24),
        tiny_shapes("val", 2, 24),
        epochs=2,
        batch_size=4,
        trackers=[tracker],
        out_dir=tmp_path,
    ).fit()
    assert [s for s, _ in tracker.images] == [1, 2] and tracker.closed
    image = tracker.images[-1][1]["val/prediction"]
    assert image.shape == (24, 24, 3) and image.dtype == np.uint8
    values = tracker.histograms[-1][1]
    assert list(values) == [f"weights/{i}" for i in range(4)]
    np.testing.assert_array_equal(values["weights/3"], model[3].weight.detach().numpy())
    assert any("val/miou" in m for _, m in tracker.metrics)


@pytest.fixture
def tiny_registered_model():
    """TinyNet registered for the duration of one test (an end-to-end CLI run stays cheap)."""
    from segkit.models import MODELS

    MODELS.register("engine_test_tinynet")(TinyNet)
    yield "engine_test_tinynet"
    MODELS._entries.pop("engine_test_tinynet")  # leave the registry as the other tests expect it


def test_cli_train_resume_last_continues_the_run(tmp_path, tiny_registered_model):
    from segkit.cli import main

    cfg = {
        "model": {"name": "engine_test_tinynet", "width": 4},
        "data": {
            "name": "shapes",
            "image_size": 32,
            "train": {"split": "train", "num_images": 2},
            "val": {"split": "val", "num_images": 1},
        },
        "train": {"epochs": 1, "batch_size": 1, "out_dir": str(tmp_path / "run"), "log_every": 1},
    }
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["train", "--config", str(path)]) == 0
    assert main(["train", "--config", str(path), "--resume", "last", "--set", "train.epochs=2"]) == 0
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows if "val/miou" in r] == [0, 1]
    assert [r["step"] for r in rows if "train/lr" in r] == [1, 2, 3, 4]
    assert load_checkpoint(tmp_path / "run" / "last.pt")["global_step"] == 4


def test_bad_options_name_the_field():
    with pytest.raises(ValueError, match="checkpoint_every"):
        Trainer(TinyNet(), checkpoint_every=0)
    with pytest.raises(ValueError, match="task"):
        Trainer(TinyNet(), task="panoptic")
