"""The Trainer's core loop: learning happens, files are written, hooks run in the documented order."""

import json

import pytest
import torch

from segkit import Trainer, build_model
from segkit.checkpoint import load_checkpoint
from segkit.engine.callbacks import Callback
from tests.engine._nets import TinyNet


def test_short_run_raises_val_miou_and_writes_run_folder(tmp_path, tiny_shapes):
    train, val = tiny_shapes("train", 48, 32), tiny_shapes("val", 16, 32)
    trainer = Trainer(
        TinyNet(width=16), "ce", train, val, epochs=4, batch_size=8, lr=0.01, out_dir=tmp_path, log_every=2
    )
    before = trainer.validate()["miou"]
    metrics = trainer.fit()
    assert metrics["val/miou"] > before + 0.05
    for name in ("last.pt", "best.pt", "metrics.jsonl"):
        assert (tmp_path / name).is_file(), name
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    epoch_rows = [r for r in rows if "val/miou" in r]
    assert [r["epoch"] for r in epoch_rows] == [0, 1, 2, 3]
    assert any("train/lr" in r for r in rows)
    best = load_checkpoint(tmp_path / "best.pt")
    assert best["metrics"]["val/miou"] == max(r["val/miou"] for r in epoch_rows)


def test_unet_by_name_learns(tmp_path, tiny_shapes):
    model = build_model("unet", encoder="resnet18", num_classes=4, decoder_channels=[32, 16, 16, 8, 8])
    trainer = Trainer(
        model,
        "ce",
        tiny_shapes("train", 32, 32),
        tiny_shapes("val", 8, 32),
        epochs=2,
        batch_size=8,
        lr=0.003,
        out_dir=tmp_path,
    )
    first = trainer.fit()
    assert first["train/loss"] < 1.3  # chance level for 4 classes is ln 4 = 1.386


def test_callback_hook_order(tmp_path, tiny_shapes):
    calls = []

    class Recorder(Callback):
        def on_fit_start(self, trainer):
            calls.append("fit_start")

        def on_epoch_start(self, trainer):
            calls.append("epoch_start")

        def on_train_batch_end(self, trainer, outputs):
            assert "loss" in outputs
            calls.append("batch_end")

        def on_step_end(self, trainer):
            calls.append(f"step_end{trainer.global_step}")

        def on_validation_end(self, trainer, metrics):
            assert "miou" in metrics
            calls.append("validation_end")

        def on_epoch_end(self, trainer, metrics):
            assert "train/loss" in metrics and "val/miou" in metrics  # train and val together
            calls.append("epoch_end")

        def on_checkpoint(self, trainer, metrics):
            calls.append("checkpoint")

        def on_fit_end(self, trainer):
            calls.append("fit_end")

    Trainer(
        TinyNet(width=16),
        None,
        tiny_shapes("train", 8, 32),
        tiny_shapes("val", 4, 32),
        epochs=2,
        batch_size=4,
        callbacks=[Recorder()],
        out_dir=tmp_path,
    ).fit()

    def epoch(first_step):
        steps = [[f"step_end{first_step + k}", "batch_end"] for k in range(2)]
        return ["epoch_start", *steps[0], *steps[1], "validation_end", "epoch_end", "checkpoint"]

    assert calls == ["fit_start", *epoch(1), *epoch(3), "fit_end"]


def test_subclass_overrides_compute_loss(tmp_path, tiny_shapes):
    class MyTrainer(Trainer):
        def compute_loss(self, outputs, batch):
            out = super().compute_loss(outputs, batch)
            out["aux"] = outputs.pow(2).mean() * 0.01
            out["loss"] = out["loss"] + out["aux"]
            return out

    trainer = MyTrainer(
        TinyNet(width=16),
        "ce",
        tiny_shapes("train", 8, 32),
        None,
        epochs=1,
        batch_size=4,
        out_dir=tmp_path,
        log_every=1,
    )
    trainer.fit()
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert any("train/aux" in r for r in rows)


def test_combined_loss_terms_are_logged(tmp_path, tiny_shapes):
    Trainer(
        TinyNet(width=16),
        "ce+dice",
        tiny_shapes("train", 8, 32),
        None,
        epochs=1,
        batch_size=4,
        out_dir=tmp_path,
        log_every=1,
    ).fit()
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert any("train/loss/ce" in r and "train/loss/dice" in r for r in rows)


def test_nonfinite_losses_stop_training_with_a_clear_message(tmp_path, tiny_shapes):
    class NaNNet(TinyNet):
        def forward(self, x):
            return super().forward(x) * float("nan")

    trainer = Trainer(
        NaNNet(), "ce", tiny_shapes("train", 16, 32), None, epochs=1, batch_size=2, max_nonfinite=3, out_dir=tmp_path
    )
    before = [p.detach().clone() for p in trainer.model.parameters()]
    with pytest.raises(FloatingPointError, match="3 consecutive non-finite losses"):
        trainer.fit()
    assert all(torch.equal(a, b) for a, b in zip(before, trainer.model.parameters()))
    assert not (tmp_path / "best.pt").exists()
