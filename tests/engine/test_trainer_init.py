"""``Trainer.__init__`` checks and stores its arguments (issue 29 item 2): constructing Trainers joins no process
group, leaves the global RNG as it was and does not change the validation data; ``fit`` does those."""

import random

import numpy as np
import pytest
import torch
import torch.distributed as dist

from segkit import Trainer


def _rng_states():
    return torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()


def test_two_trainers_under_a_torchrun_environment_touch_nothing(tmp_path, tiny_shapes, monkeypatch):
    for key, value in {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
                       "MASTER_PORT": "29599"}.items():  # fmt: skip
        monkeypatch.setenv(key, value)

    def joined(*args, **kwargs):
        raise AssertionError("Trainer.__init__ joined a process group")

    monkeypatch.setattr(dist, "init_process_group", joined)
    train, val = tiny_shapes("train", 4, 16), tiny_shapes("val", 2, 16)
    val.normalization, val.set_normalization = "own", lambda norm: pytest.fail("val data changed in __init__")
    torch.manual_seed(123)
    before = _rng_states()
    first = Trainer({"name": "unet", "encoder": "resnet18"}, "ce", train, val, epochs=1, seed=5, out_dir=tmp_path)
    second = Trainer({"name": "unet", "encoder": "resnet18"}, "ce", train, val, epochs=1, seed=5, out_dir=tmp_path)
    after = _rng_states()
    assert torch.equal(before[0], after[0]) and np.array_equal(before[1], after[1]) and before[2] == after[2]
    assert not dist.is_initialized()
    assert (first.dist.rank, first.dist.world_size) == (0, 2)  # read from the environment, not joined
    # The seed still fixes a model built by name: both constructions gave the same initial weights.
    for (name, a), b in zip(first.module.state_dict().items(), second.module.state_dict().values()):
        assert torch.equal(a, b), name
