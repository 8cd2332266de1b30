"""Faults around checkpoint files: a write that dies or fails, a run folder that cannot be written."""

from __future__ import annotations

import errno
import json
import re

import pytest
import torch
import yaml

import segkit.checkpoint as ckpt_module
from segkit import Trainer
from segkit.checkpoint import CheckpointError, load_checkpoint
from segkit.cli import main
from segkit.engine.callbacks import Callback
from tests.engine._nets import TinyNet

STEPS = 8  # 2 epochs of 4 batches


def _trainer(out_dir, tiny_shapes, callbacks=()):
    torch.manual_seed(1)
    return Trainer(
        TinyNet(), "ce", tiny_shapes("train", 16, 24), tiny_shapes("val", 2, 24), epochs=2, batch_size=4, lr=0.01,
        checkpoint_every=1, log_every=1, seed=3, callbacks=callbacks, out_dir=out_dir,
    )  # fmt: skip


@pytest.fixture
def reference(tmp_path, tiny_shapes):
    trainer = _trainer(tmp_path / "reference", tiny_shapes)
    trainer.fit()
    return trainer.module.state_dict()


def _fail_on_save(monkeypatch, at, make_error):
    """Make the ``at``-th checkpoint write (1-based) fail inside ``torch.save`` after writing some bytes."""
    real_save, calls = torch.save, []

    def save(obj, fh, *args, **kwargs):
        calls.append(1)
        if len(calls) == at:
            fh.write(b"PK\x03\x04 half a checkpoint")
            raise make_error()
        return real_save(obj, fh, *args, **kwargs)

    monkeypatch.setattr(ckpt_module.torch, "save", save)


def _assert_resumes_to(out_dir, tiny_shapes, reference):
    resumed = _trainer(out_dir, tiny_shapes)
    resumed.fit(resume="last")
    assert resumed.global_step == STEPS
    for key, value in reference.items():
        assert torch.equal(resumed.module.state_dict()[key], value), key


@pytest.mark.parametrize(
    "make_error", [KeyboardInterrupt, lambda: OSError(errno.ENOSPC, "No space left on device")], ids=["kill", "full"]
)
def test_failed_checkpoint_write_keeps_the_previous_one(tmp_path, tiny_shapes, reference, monkeypatch, make_error):
    run = tmp_path / "run"
    _fail_on_save(monkeypatch, at=3, make_error=make_error)  # steps 1 and 2 are saved, step 3's write fails
    with pytest.raises((KeyboardInterrupt, CheckpointError)) as info:
        _trainer(run, tiny_shapes).fit()
    if info.type is CheckpointError:  # disk full: reported at the failing write, with the file
        assert re.search(rf"cannot write checkpoint {re.escape(str(run / 'last.pt'))}: No space left", str(info.value))
    assert load_checkpoint(run / "last.pt")["global_step"] == 2  # never replaced by the half-written file
    assert load_checkpoint(run / "last.prev.pt")["global_step"] == 1
    assert not list(run.glob(".*.tmp"))  # the temporary file is removed
    monkeypatch.undo()
    _assert_resumes_to(run, tiny_shapes, reference)


def test_sigkill_mid_write_leftovers_and_torn_last_pt(tmp_path, tiny_shapes, reference):
    run = tmp_path / "run"

    class Stop(Callback):
        def on_train_batch_end(self, trainer, outputs):
            if trainer.global_step == 5:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _trainer(run, tiny_shapes, [Stop()]).fit()
    # What SIGKILL inside a write leaves: the half-written temporary file (no cleanup ran) ...
    (run / ".last.pt.k1ll3d.tmp").write_bytes(b"PK\x03\x04 half")
    # ... and, for a file system without atomic rename, a zero-byte last.pt.
    (run / "last.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match=re.escape(f"checkpoint {run / 'last.pt'} is empty (0 bytes)")):
        load_checkpoint(run / "last.pt")
    _assert_resumes_to(run, tiny_shapes, reference)  # falls back to last.prev.pt (step 4)


def test_unwritable_run_folder_is_reported_before_training(tmp_path, tiny_shapes):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")  # root ignores permissions, but nobody can create a folder under a file
    out_dir = blocker / "run"

    class Count(Callback):
        batches = 0

        def on_train_batch_end(self, trainer, outputs):
            Count.batches += 1

    trainer = _trainer(out_dir, tiny_shapes, [Count()])
    before = {k: v.clone() for k, v in trainer.module.state_dict().items()}
    with pytest.raises(CheckpointError, match=re.escape(f"run folder {out_dir} is not writable")):
        trainer.fit()
    assert Count.batches == 0 and all(torch.equal(v, trainer.module.state_dict()[k]) for k, v in before.items())


def test_cli_reports_an_unwritable_run_folder_in_one_line(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    cfg = {
        "model": {"name": "segnet", "base_width": 4},
        "data": {"name": "shapes", "image_size": 32, "train": {"split": "train", "num_images": 2}},
        "train": {"epochs": 1, "batch_size": 2, "device": "cpu", "out_dir": str(blocker / "run")},
    }
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["train", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"segkit train: error: run folder {blocker / 'run'} is not writable: Not a directory" in err
    assert "Traceback" not in err


def test_resume_auto_starts_a_new_run_then_continues_one(tmp_path, tiny_shapes, reference, capsys):
    """``resume="auto"`` is what `torchrun --max-restarts` needs: one command for the first start and every restart."""
    run = tmp_path / "run"
    run.mkdir()
    # A first attempt that died before its first checkpoint left a metrics row behind.
    (run / "metrics.jsonl").write_text('{"step": 1, "train/loss": 9.0, "train/lr": 0.01}\n')

    class Stop(Callback):
        def on_train_batch_end(self, trainer, outputs):
            if trainer.global_step == 3:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _trainer(run, tiny_shapes, [Stop()]).fit(resume="auto")
    assert f"resume='auto': no checkpoint in {run}, starting a new run" in capsys.readouterr().out
    resumed = _trainer(run, tiny_shapes)
    resumed.fit(resume="auto")
    assert "resuming from" in capsys.readouterr().out
    for key, value in reference.items():
        assert torch.equal(resumed.module.state_dict()[key], value), key
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "train/lr" in r] == list(range(1, STEPS + 1))
    assert 9.0 not in [r.get("train/loss") for r in rows]
