"""Checkpoints hold the callbacks' state after the epoch they close (a resumed run decides as an uninterrupted
one), a misspelt monitor is an error, and ``keep_last=N`` keeps N numbered files."""

import pytest

from segkit import Trainer
from segkit.checkpoint import load_checkpoint
from tests.engine._counter import Counter
from tests.engine._nets import TinyNet


class ScriptedTrainer(Trainer):
    """Validation returns scripted scores (one per epoch), so best/early-stop decisions are known in advance."""

    scores: tuple[float, ...] = ()

    def validate(self, data=None):
        return {"miou": self.scores[self.epoch], "pixel_accuracy": 0.5}


def _trainer(tmp_path, tiny_shapes, epochs, scores, **kw):
    trainer = ScriptedTrainer(
        TinyNet(width=8),
        "ce",
        tiny_shapes("train", 4, 16),
        tiny_shapes("val", 2, 16),
        epochs=epochs,
        batch_size=4,
        out_dir=tmp_path,
        **kw,
    )
    trainer.scores = scores
    return trainer


def test_best_pt_survives_a_resume_and_a_worse_epoch(tmp_path, tiny_shapes):
    scores = (0.5, 0.7, 0.6)
    _trainer(tmp_path, tiny_shapes, 2, scores).fit()  # epochs 0, 1; then the run is "killed"
    assert (
        load_checkpoint(tmp_path / "last.pt")["callbacks"]["ModelCheckpoint"]["best"] == 0.7
    )  # the state after epoch 1
    _trainer(tmp_path, tiny_shapes, 3, scores).fit(resume="last")  # epoch 2 scores 0.6 < 0.7
    best = load_checkpoint(tmp_path / "best.pt")
    assert best["metrics"]["val/miou"] == 0.7 and best["epoch"] == 2  # written at the end of epoch index 1


def test_early_stopping_after_a_resume_stops_at_the_same_epoch(tmp_path, tiny_shapes):
    scores = (0.5, 0.7, 0.6, 0.65, 0.9, 0.9)
    whole = _trainer(tmp_path / "whole", tiny_shapes, 6, scores, early_stop_patience=1).fit()
    assert whole["epoch"] == 2  # 0.6 after the best 0.7: one bad epoch with patience 1
    _trainer(tmp_path / "cut", tiny_shapes, 2, scores, early_stop_patience=1).fit()
    resumed = _trainer(tmp_path / "cut", tiny_shapes, 6, scores, early_stop_patience=1).fit(resume="last")
    assert resumed["epoch"] == whole["epoch"]


def test_every_callback_state_in_last_pt_is_the_state_after_its_epoch(tmp_path, tiny_shapes):
    _trainer(tmp_path, tiny_shapes, 2, (0.1, 0.2), callbacks=[Counter()]).fit()
    states = load_checkpoint(tmp_path / "last.pt")["callbacks"]
    assert states[Counter.__qualname__] == {"epochs_seen": 2}


@pytest.mark.parametrize("early_stop", [None, 3])
def test_a_misspelt_monitor_is_an_error_listing_the_metric_names(tmp_path, tiny_shapes, early_stop):
    trainer = _trainer(tmp_path, tiny_shapes, 2, (0.5, 0.6), monitor="mIoU", early_stop_patience=early_stop)
    with pytest.raises(ValueError, match=r"monitor 'val/mIoU' is not among the epoch metrics") as err:
        trainer.fit()
    assert "val/miou" in str(err.value) and "miou, pixel_accuracy" in str(err.value)
    assert trainer.epoch == 1  # raised after the first validation, not after the whole run


def test_without_validation_data_a_val_monitor_is_not_an_error(tmp_path, tiny_shapes):
    trainer = Trainer(
        TinyNet(width=8), "ce", tiny_shapes("train", 4, 16), None, epochs=1, batch_size=4, out_dir=tmp_path
    )
    trainer.fit()
    assert (tmp_path / "last.pt").exists() and not (tmp_path / "best.pt").exists()


@pytest.mark.parametrize("keep", [0, 1, 2])
def test_keep_last_keeps_that_many_numbered_files(tmp_path, tiny_shapes, keep):
    _trainer(tmp_path, tiny_shapes, 3, (0.1, 0.2, 0.3), keep_last=keep).fit()
    expected = [f"epoch_{e:03d}.pt" for e in (1, 2, 3)][3 - keep :] if keep else []
    assert sorted(p.name for p in tmp_path.glob("epoch_*.pt")) == expected
