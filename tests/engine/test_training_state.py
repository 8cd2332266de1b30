"""The training state is one object (``trainer.state``, a ``TrainState``) and a checkpoint is assembled and read
back by name (issue 29 item 1)."""

import torch

from segkit import Trainer
from segkit.engine.training_state import TrainState
from tests.engine._nets import TinyNet


def test_the_trainers_progress_lives_in_its_state_object(tmp_path, tiny_shapes):
    trainer = Trainer(TinyNet(width=4), "ce", tiny_shapes("train", 4, 16), None, epochs=2, batch_size=2,
                      out_dir=tmp_path)  # fmt: skip
    assert isinstance(trainer.state, TrainState) and trainer.state.position == (0, 0, 0)
    trainer.fit()
    assert trainer.state.position == (2, 0, 4) and (trainer.epoch, trainer.global_step) == (2, 4)
    trainer.epoch = 7  # the public attributes write through to the state
    assert trainer.state.epoch == 7
    state = trainer.state_dict({"val/miou": 0.5})
    named = {"model", "optimizer", "scheduler", "scaler", "ema", "callbacks", "time_budget", "rng", "metrics"}
    assert named <= set(state) and set(state["callbacks"]) == {"ModelCheckpoint"}
    assert (state["epoch"], state["global_step"], state["batches_done"]) == (7, 4, 0)


def test_train_state_round_trip_keeps_rank_zeros_epoch_loss_only():
    saved = TrainState(epoch=3, global_step=12, batches_done=2, nonfinite_steps=1, consecutive_nonfinite=1,
                       epoch_loss=torch.tensor([4.0, 2.0])).state_dict()  # fmt: skip
    rank0, rank1 = TrainState(), TrainState()
    rank0.load_state_dict(saved, rank=0)
    rank1.load_state_dict(saved, rank=1)
    assert rank0.position == rank1.position == (3, 2, 12)
    assert (rank0.nonfinite_steps, rank0.consecutive_nonfinite) == (1, 1)
    assert torch.equal(rank0.epoch_loss, torch.tensor([4.0, 2.0])) and torch.equal(rank1.epoch_loss, torch.zeros(2))


def test_a_list_of_callback_states_from_older_segkit_is_matched_only_where_it_cannot_be_wrong():
    from segkit.engine.callbacks import EarlyStopping, ModelCheckpoint
    from segkit.engine.training_state import load_callback_states

    checkpoint, early = ModelCheckpoint(), EarlyStopping()
    lines = load_callback_states([checkpoint, early], [{"best": 0.7}, {"best": 0.6, "bad_epochs": 1}], "old.pt")
    assert checkpoint.best == 0.7  # the first entry was always the Trainer's ModelCheckpoint
    assert early.best is None and lines == [
        "resume: old.pt holds the state of callback 2 (by position), which this run does not have: not restored"
    ]  # the second could have been anybody's: named, given to nobody
    unknown = ModelCheckpoint()
    assert "callback 1 (by position)" in load_callback_states([unknown], [{"odd": 1}], "old.pt")[0]
    assert unknown.best is None
