"""Exact resume: a run killed mid-epoch and resumed ends bit-identical to an uninterrupted run."""

import json
import shutil

import pytest
import torch

from segkit import Trainer
from segkit.checkpoint import CheckpointError, load_checkpoint
from segkit.engine.callbacks import Callback
from tests.engine._kill import KillAfterStep
from tests.engine._nets import TinyNet

EPOCHS, STEPS_PER_EPOCH = 2, 5  # 20 images, batch 4


class Recorder(Callback):
    def __init__(self):
        self.calls = []

    def on_fit_start(self, trainer):
        self.calls.append("fit_start")

    def on_epoch_start(self, trainer):
        self.calls.append(f"epoch_start{trainer.epoch}")

    def on_train_batch_end(self, trainer, outputs):
        self.calls.append("batch_end")

    def on_validation_end(self, trainer, metrics):
        self.calls.append("validation_end")

    def on_epoch_end(self, trainer, metrics):
        self.calls.append("epoch_end")

    def on_fit_end(self, trainer):
        self.calls.append("fit_end")


def _trainer(out_dir, data, callbacks=()):
    torch.manual_seed(1)  # a different init each call would be overwritten on resume anyway
    return Trainer(
        TinyNet(dropout=0.3),
        "ce",
        data[0],
        data[1],
        epochs=EPOCHS,
        batch_size=4,
        lr=0.01,
        scheduler="cosine",
        warmup_iters=3,
        ema=0.8,
        log_every=1,
        checkpoint_every=2,
        seed=3,
        callbacks=callbacks,
        out_dir=out_dir,
    )


@pytest.fixture(scope="module")
def data():
    from segkit.datasets import build_dataset

    return (
        build_dataset("shapes", split="train", num_images=20, image_size=24),
        build_dataset("shapes", split="val", num_images=4, image_size=24),
    )


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data):
    trainer = _trainer(tmp_path_factory.mktemp("ref"), data)
    trainer.fit()
    return trainer


def _interrupted(out_dir, data, at=7):
    with pytest.raises(KeyboardInterrupt):
        _trainer(out_dir, data, [KillAfterStep(at)]).fit()


def _assert_same_weights(a, b):
    for (name, x), y in zip(a.module.state_dict().items(), b.module.state_dict().values()):
        assert torch.equal(x, y), name
    for x, y in zip(a.ema.state_dict().values(), b.ema.state_dict().values()):
        assert torch.equal(x, y)


def test_resume_mid_epoch_equals_uninterrupted_run(tmp_path, data, reference):
    _interrupted(tmp_path, data, at=7)  # killed at step 7; last.pt was written at step 6 (epoch 2, batch 1)
    state = load_checkpoint(tmp_path / "last.pt")
    assert (state["epoch"], state["global_step"], state["batches_done"]) == (1, 6, 1)
    recorder = Recorder()
    resumed = _trainer(tmp_path, data, [recorder])
    resumed.fit(resume="last")
    _assert_same_weights(resumed, reference)
    assert resumed.global_step == EPOCHS * STEPS_PER_EPOCH
    # The resumed epoch starts again (on_epoch_start) and runs only its 4 remaining batches.
    assert recorder.calls == ["fit_start", "epoch_start1", *["batch_end"] * 4, "validation_end", "epoch_end", "fit_end"]
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    step_rows = [r["step"] for r in rows if "train/lr" in r]
    assert step_rows == list(range(1, EPOCHS * STEPS_PER_EPOCH + 1))  # none duplicated, none missing
    assert [r["epoch"] for r in rows if "val/miou" in r] == [0, 1]
    ref_rows = [json.loads(line) for line in (reference.out_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r.get("train/loss") for r in rows] == [r.get("train/loss") for r in ref_rows]


def test_resume_last_falls_back_when_last_pt_is_truncated(tmp_path, data, reference):
    _interrupted(tmp_path, data, at=7)
    last = tmp_path / "last.pt"
    last.write_bytes(last.read_bytes()[:100])  # a torn file, as after a crash during a copy
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(last)
    resumed = _trainer(tmp_path, data)
    resumed.fit(resume="last")  # uses last.prev.pt (step 4)
    _assert_same_weights(resumed, reference)


def test_resume_from_epoch_end_checkpoint_path(tmp_path, data, reference):
    _interrupted(tmp_path, data, at=7)
    shutil.copy(tmp_path / "last.prev.pt", tmp_path / "step4.pt")
    resumed = _trainer(tmp_path, data)
    resumed.fit(resume=tmp_path / "step4.pt")
    _assert_same_weights(resumed, reference)


def test_resume_without_any_checkpoint_names_the_folder(tmp_path, data):
    with pytest.raises(CheckpointError, match="no readable checkpoint"):
        _trainer(tmp_path, data).fit(resume="last")


@pytest.mark.parametrize("workers", [0, 1])
def test_random_augmentation_is_reproducible_and_resumes_exactly(tmp_path, workers):
    """albumentations draws from its own generator (OS-seeded, advanced in whichever worker loads the
    sample): the Trainer seeds it per (seed, epoch, sample), so two runs agree and a resume is exact."""
    from segkit.datasets import build_dataset
    from segkit.datasets.transforms import train_transforms

    def data():
        # a fresh Compose per run: nothing carries over from an earlier run's generator
        train = build_dataset("shapes", split="train", num_images=20, image_size=24, transforms=train_transforms(20))
        return train, build_dataset("shapes", split="val", num_images=4, image_size=24)

    def run(out, callbacks=(), resume=None):
        trainer = _trainer(out, data(), callbacks)
        trainer.workers = workers
        trainer.fit(resume=resume)
        return trainer

    first, second = run(tmp_path / "a"), run(tmp_path / "b")
    _assert_same_weights(first, second)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "c", [KillAfterStep(7)])
    _assert_same_weights(run(tmp_path / "c", resume="last"), first)


def test_seeded_augmentation_reaches_transforms_under_wrappers():
    from torch.utils.data import Subset

    from segkit.datasets import build_dataset
    from segkit.datasets.transforms import train_transforms
    from segkit.engine.sampling import SeededAugmentation
    from segkit.losses.distance import WithDistanceMaps

    base = build_dataset("shapes", split="train", num_images=4, image_size=24, transforms=train_transforms(20))
    for wrapped in (Subset(base, [2, 3]), WithDistanceMaps(Subset(base, [2, 3]), num_classes=4)):
        seeded = SeededAugmentation(wrapped)
        assert seeded.transforms is base.transforms
        a, b, c = seeded[(1, 7)], seeded[(1, 7)], seeded[(1, 8)]
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["mask"], b["mask"])
        assert not torch.equal(a["image"], c["image"])
