"""Non-finite steps skipped on the device (fused optimizer, no host sync) behave like the synced skip."""

import pytest
import torch

from segkit import Trainer
from tests.engine._nets import TinyNet


class NaNOnBatches(TinyNet):
    """TinyNet whose output is NaN on the given forward calls (0-based), finite otherwise."""

    def __init__(self, bad_calls):
        super().__init__()
        self.bad_calls, self.calls = set(bad_calls), 0

    def forward(self, x):
        out = super().forward(x)
        bad = self.calls in self.bad_calls
        self.calls += 1
        return out * float("nan") if bad else out


def _train(tmp_path, bad_calls, on_device, **kw):
    torch.manual_seed(0)
    model = NaNOnBatches(bad_calls)
    data = kw.pop("data")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=1e-2, fused=True)
    trainer = Trainer(model, "ce", data, None, epochs=1, batch_size=2, optimizer=opt, scheduler=None,
                      out_dir=tmp_path, log_every=1, **kw)  # fmt: skip
    trainer._force_skip_on_device = on_device
    return trainer


def test_device_skip_matches_synced_skip(tmp_path, tiny_shapes):
    """Same weights, same optimizer step counts and same nonfinite count as the host-synced path."""
    data = tiny_shapes("train", 12, 32)
    synced = _train(tmp_path / "a", {1, 3, 4}, False, data=data)
    on_device = _train(tmp_path / "b", {1, 3, 4}, True, data=data)
    m_synced, m_device = synced.fit(), on_device.fit()
    assert on_device._skip_on_device and not synced._skip_on_device
    for a, b in zip(synced.model.parameters(), on_device.model.parameters()):
        torch.testing.assert_close(a, b)
    steps = [int(s["step"]) for s in on_device.optimizer.state.values()]
    assert steps == [int(s["step"]) for s in synced.optimizer.state.values()] == [3] * len(steps)
    assert on_device.nonfinite_steps == synced.nonfinite_steps == 3
    assert m_device["train/loss"] == pytest.approx(m_synced["train/loss"])


def test_device_skip_stops_after_max_nonfinite_in_a_row(tmp_path, tiny_shapes):
    trainer = _train(tmp_path, set(range(100)), True, data=tiny_shapes("train", 16, 32), max_nonfinite=3)
    before = [p.detach().clone() for p in trainer.model.parameters()]
    with pytest.raises(FloatingPointError, match="3 consecutive non-finite losses"):
        trainer.fit()
    assert all(torch.equal(a, b) for a, b in zip(before, trainer.model.parameters()))
    assert trainer.nonfinite_steps == 3  # log_every=1: the stop comes at the first log point past the limit
