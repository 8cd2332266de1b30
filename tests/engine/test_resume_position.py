"""A mid-epoch checkpoint resumes only with the batch size and number of processes that wrote it (each rank
skips its first ``batches_done * batch_size`` samples); an end-of-epoch checkpoint resumes with any."""

import pytest
import torch

from segkit import Trainer
from segkit.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from segkit.engine.callbacks import Callback
from segkit.engine.training_state import check_mid_epoch_position
from tests.engine._kill import KillAfterStep
from tests.engine._nets import TinyNet

STEPS_PER_EPOCH = 5  # 20 images, batch 4


def _trainer(out_dir, data, batch_size=4, callbacks=()):
    torch.manual_seed(1)
    return Trainer(
        TinyNet(dropout=0.3), "ce", data[0], data[1], epochs=2, batch_size=batch_size, lr=0.01, seed=3,
        log_every=1, checkpoint_every=2, device="cpu", out_dir=out_dir, callbacks=callbacks,
    )  # fmt: skip


@pytest.fixture(scope="module")
def data():
    from segkit.datasets import build_dataset

    return (
        build_dataset("shapes", split="train", num_images=20, image_size=24),
        build_dataset("shapes", split="val", num_images=4, image_size=24),
    )


@pytest.fixture
def cut_run(tmp_path, data):
    # Killed after step 7: last.pt holds step 6 (epoch 2, batch 1), last.prev.pt step 5 (end of epoch 1).
    with pytest.raises(KeyboardInterrupt):
        _trainer(tmp_path, data, callbacks=[KillAfterStep(7)]).fit()
    last, prev = load_checkpoint(tmp_path / "last.pt"), load_checkpoint(tmp_path / "last.prev.pt")
    assert (last["epoch"], last["batches_done"], last["batch_size"], last["world_size"]) == (1, 1, 4, 1)
    assert (prev["epoch"], prev["batches_done"]) == (1, 0)  # written at the end of epoch 1
    return tmp_path


def test_mid_epoch_resume_with_another_batch_size_is_refused(cut_run, data):
    trainer = _trainer(cut_run, data, batch_size=2)
    with pytest.raises(CheckpointError) as error:
        trainer.fit(resume="last")
    message = str(error.value)
    assert str(cut_run / "last.pt") in message
    assert "batch_size 4 on 1 process(es)" in message and "batch_size 2 on 1" in message
    assert "Resume with batch_size 4 and 1 process(es), or from an end-of-epoch checkpoint" in message
    assert trainer.global_step == 0  # refused before anything was restored


def test_mid_epoch_resume_with_the_same_batch_size_is_exact(cut_run, data, tmp_path_factory):
    reference = _trainer(tmp_path_factory.mktemp("ref"), data)
    reference.fit()
    resumed = _trainer(cut_run, data)
    resumed.fit(resume="last")
    for (name, x), y in zip(resumed.module.state_dict().items(), reference.module.state_dict().values()):
        assert torch.equal(x, y), name


def test_end_of_epoch_checkpoint_resumes_with_any_batch_size(cut_run, data):
    resumed = _trainer(cut_run, data, batch_size=2)
    resumed.fit(resume=cut_run / "last.prev.pt")
    assert resumed.global_step == STEPS_PER_EPOCH + 10  # epoch 2 in 10 batches of 2


def test_checkpoint_without_batch_size_is_not_checked(cut_run, data):
    state = load_checkpoint(cut_run / "last.pt")
    del state["batch_size"], state["world_size"]  # as written by an older segkit
    save_checkpoint(state, cut_run / "old.pt")
    start = AtFitStart()
    resumed = _trainer(cut_run, data, batch_size=2, callbacks=[start])
    resumed.fit(resume=cut_run / "old.pt")
    assert start.seen == (1, 1, 6)  # restored: epoch 2, after its batch 1, step 6 (a new run would start at 0, 0, 0)
    # The rest of epoch 2 at batch_size 2 from sample 1 * 2 (the old file's position is taken as is): 9 batches.
    assert resumed.global_step == 6 + 9


class AtFitStart(Callback):
    """Records (epoch, batches_done, global_step) when fit starts, after the resume restored them."""

    def on_fit_start(self, trainer):
        self.seen = (trainer.epoch, trainer.batches_done, trainer.global_step)


def test_another_number_of_processes_is_refused_mid_epoch_only():
    state = {"epoch": 0, "batches_done": 3, "batch_size": 4, "world_size": 2}
    with pytest.raises(CheckpointError, match=r"run.pt .*processes 2 -> 1.*Resume with batch_size 4 and 2 process"):
        check_mid_epoch_position(state, 4, 1, "run.pt")
    check_mid_epoch_position({**state, "batches_done": 0}, 8, 1, "run.pt")  # end of epoch: any
    check_mid_epoch_position(state, 4, 2, "run.pt")
