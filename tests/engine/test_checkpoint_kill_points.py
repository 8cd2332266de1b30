"""A kill at any point of any checkpoint write resumes to the best.pt an uninterrupted run writes, and callback
states reach their owners by name (issue 26 items 1 and 8)."""

import os

import pytest
import torch

from segkit import Trainer
from segkit.checkpoint import load_checkpoint
from tests.engine._counter import Counter
from tests.engine._nets import TinyNet

SCORES = (0.5, 0.4, 0.6)  # epochs 0 and 2 improve, epoch 1 does not


class Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs (not an Exception, so no handler in segkit catches it)."""


class ScriptedTrainer(Trainer):
    """Real training (the weights change every epoch), scripted validation scores (known best epochs)."""

    def validate(self, data=None):
        return {"miou": SCORES[self.epoch], "pixel_accuracy": 0.5}


def _run(out_dir, data, resume=None, keep_last=1):
    torch.manual_seed(0)
    trainer = ScriptedTrainer(
        TinyNet(width=4), "ce", data[0], data[1], epochs=len(SCORES), batch_size=4, lr=0.05, seed=1,
        keep_last=keep_last, out_dir=out_dir,
    )  # fmt: skip
    trainer.fit(resume=resume)
    return trainer


class WritePoints:
    """Counts the steps of every checkpoint write (its start, each rename) and raises ``Killed`` at one of them.

    A write is: ``torch.save`` of a temporary file, then ``os.replace`` of the old file to ``.prev`` (last.pt
    only), then ``os.replace`` of the temporary file onto the name. A kill before a rename leaves the old file."""

    def __init__(self, monkeypatch, kill_at=None):
        self.count, self.kill_at = 0, kill_at
        real_save, real_replace = torch.save, os.replace

        def point():
            self.count += 1
            if self.count == self.kill_at:
                raise Killed

        def save(*args, **kwargs):
            point()
            return real_save(*args, **kwargs)

        def replace(*args, **kwargs):
            point()
            return real_replace(*args, **kwargs)

        monkeypatch.setattr("segkit.checkpoint.torch.save", save)
        monkeypatch.setattr("segkit.checkpoint.os.replace", replace)


@pytest.fixture(scope="module")
def data():
    from segkit.datasets import build_dataset

    return (
        build_dataset("shapes", split="train", num_images=4, image_size=16),
        build_dataset("shapes", split="val", num_images=2, image_size=16),
    )


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, data):
    out = tmp_path_factory.mktemp("whole")
    with pytest.MonkeyPatch.context() as mp:
        points = WritePoints(mp)
        _run(out, data)
    return load_checkpoint(out / "best.pt"), points.count


def test_a_kill_at_every_write_point_resumes_to_the_uninterrupted_best_pt(tmp_path, data, uninterrupted, monkeypatch):
    best, points = uninterrupted
    assert best["metrics"]["val/miou"] == max(SCORES) and points >= 3 * 4  # every epoch: best.pt?, epoch file, last.pt
    for kill_at in range(1, points + 1):
        out = tmp_path / f"kill{kill_at}"
        with monkeypatch.context() as mp:
            WritePoints(mp, kill_at)
            with pytest.raises(Killed):
                _run(out, data)
        _run(out, data, resume="auto")  # as `segkit train --resume auto` after a kill
        resumed = load_checkpoint(out / "best.pt")
        assert resumed["metrics"]["val/miou"] == best["metrics"]["val/miou"], f"kill at write point {kill_at}"
        assert resumed["epoch"] == best["epoch"] and resumed["global_step"] == best["global_step"]
        for name, weights in best["model"].items():
            assert torch.equal(resumed["model"][name], weights), f"kill at write point {kill_at}: {name}"


def _plain(out_dir, data, epochs, **kwargs):
    return ScriptedTrainer(TinyNet(width=4), "ce", data[0], data[1], epochs=epochs, batch_size=4, out_dir=out_dir,
                           **kwargs)  # fmt: skip


def test_callback_states_reach_their_owners_by_name_when_the_callbacks_change(tmp_path, data, capsys):
    _plain(tmp_path, data, 2, callbacks=[Counter()]).fit()
    counter = Counter()
    resumed = _plain(tmp_path, data, 3, callbacks=[counter], early_stop_patience=5)
    resumed.fit(resume="last")
    early = next(cb for cb in resumed.callbacks if type(cb).__name__ == "EarlyStopping")
    assert counter.epochs_seen == 3  # 2 restored + 1 run: the Counter got its own state
    assert early.best == SCORES[2] and early.bad_epochs == 0  # a fresh EarlyStopping saw only epoch 2

    # Saved with a Counter, resumed without: its state is named, not handed to another callback.
    capsys.readouterr()
    _plain(tmp_path / "b", data, 2, callbacks=[Counter()]).fit()
    capsys.readouterr()
    _plain(tmp_path / "b", data, 3, early_stop_patience=5).fit(resume="last")
    out = capsys.readouterr().out
    assert "Counter" in out and "not restored" in out


def test_a_changed_monitor_resets_best_with_a_line(tmp_path, data, capsys):
    _plain(tmp_path, data, 2).fit()  # monitors val/miou: best 0.5 (epoch 0)
    capsys.readouterr()
    trainer = _plain(tmp_path, data, 3, monitor="pixel_accuracy")
    trainer.fit(resume="last")
    out = capsys.readouterr().out
    assert "monitored val/miou" in out and "val/pixel_accuracy" in out and "reset" in out
    checkpoint = next(cb for cb in trainer.callbacks if type(cb).__name__ == "ModelCheckpoint")
    assert checkpoint.best == 0.5  # pixel_accuracy of epoch 2, not the old miou 0.5 carried over by chance
    assert load_checkpoint(tmp_path / "best.pt")["epoch"] == 3  # written for the new metric


def test_a_resume_with_another_lr_says_which_value_is_used(tmp_path, data, capsys):
    _plain(tmp_path, data, 2, lr=0.01, weight_decay=0.0).fit()
    capsys.readouterr()
    trainer = _plain(tmp_path, data, 3, lr=0.02, weight_decay=0.0)
    trainer.fit(resume="last")
    out = capsys.readouterr().out
    assert "lr 0.01 (not 0.02)" in out and "weight_decay" not in out
    assert trainer.optimizer.param_groups[0]["initial_lr"] == pytest.approx(0.01)
