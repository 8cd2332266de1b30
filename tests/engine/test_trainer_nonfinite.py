"""Non-finite steps skipped on the device (fused optimizer, no host sync) behave like the synced skip."""

import os
import subprocess
import sys
from pathlib import Path

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
    kw = {"scheduler": None, **kw}
    data = kw.pop("data")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=1e-2, fused=True)
    trainer = Trainer(model, "ce", data, None, epochs=1, batch_size=2, optimizer=opt, out_dir=tmp_path,
                      log_every=1, **kw)  # fmt: skip
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


def test_device_skip_matches_synced_skip_with_a_schedule_and_ema(tmp_path, tiny_shapes):
    """A skipped step is not a step on both paths: the same global_step, lr, EMA and weights."""
    data = tiny_shapes("train", 12, 32)
    kw = dict(data=data, scheduler="poly", warmup_iters=2, ema=0.9, ema_warmup=2.0)
    synced = _train(tmp_path / "a", {1, 3, 4}, False, **kw)
    on_device = _train(tmp_path / "b", {1, 3, 4}, True, **kw)
    synced.fit(), on_device.fit()
    assert on_device._skip_on_device and not synced._skip_on_device
    # 6 batches, 3 of them non-finite: 3 steps. The poly factor after 3 steps of 6 with a 2-step warm-up,
    # from the formula in the docs: min(1, (i + 1) / 2) * (1 - i / 6) ** 0.9 at i = 3.
    expected_lr = 1e-2 * (1 - 3 / 6) ** 0.9
    for trainer in (synced, on_device):
        assert trainer.global_step == 3 and trainer.scheduler.last_epoch == 3
        assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(expected_lr, rel=1e-12)
    for a, b in zip(synced.model.parameters(), on_device.model.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    for (key, a), b in zip(synced.ema.state_dict().items(), on_device.ema.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=key)
    # The EMA moved exactly 3 times: it is not the raw weights, and not the initial ones either.
    assert not all(torch.equal(a, b) for a, b in zip(synced.ema.module.parameters(), synced.model.parameters()))


def _windows_by_hand(data, batch_size, accumulate, bad_batches, lr):
    """Plain SGD over the Trainer's documented sample order (randperm(n) seeded with seed + epoch): each
    window's finite batches concatenated into ONE batch, one step per window that has any."""
    torch.manual_seed(0)
    model = TinyNet()
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(0)).tolist()
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    steps = 0
    for start in range(0, len(batches), accumulate):
        window = [b for k, b in enumerate(batches[start : start + accumulate], start) if k not in bad_batches]
        samples = [i for b in window for i in b]
        if not samples:
            continue
        images = torch.stack([data[i]["image"] for i in samples])
        masks = torch.stack([data[i]["mask"] for i in samples])
        assert (masks != 255).all()  # no ignored pixels: the mean of equal batches is the big batch's mean
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(images), masks).backward()
        opt.step()
        steps += 1
    return model, steps


@pytest.mark.parametrize("bad", [set(), {1}, {3}, {4, 5}], ids=["none", "mid-window", "window-end", "last-window"])
def test_accumulation_keeps_the_finite_batches_and_a_short_last_window_is_its_own_mean(tmp_path, tiny_shapes, bad):
    """12 samples, batch 2, accumulate 4: windows of 4 and 2 batches (the last one short). Each step must
    equal one SGD step on the window's finite samples as one batch; a window of non-finite batches only
    is no step."""
    data = tiny_shapes("train", 12, 24)
    torch.manual_seed(0)
    model = NaNOnBatches(bad)
    trainer = Trainer(model, "ce", data, None, epochs=1, batch_size=2, accumulate=4, scheduler=None,
                      optimizer=torch.optim.SGD(model.parameters(), lr=0.5), out_dir=tmp_path)  # fmt: skip
    trainer.fit()
    reference, steps = _windows_by_hand(data, 2, 4, bad, lr=0.5)
    assert trainer.global_step == steps and trainer.nonfinite_steps == len(bad)
    for a, b in zip(trainer.model.parameters(), reference.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def accumulate_run_kwargs():
    from segkit.datasets import build_dataset

    data = build_dataset("shapes", split="train", num_images=16, image_size=24)
    return {"loss": "ce", "train_data": data, "epochs": 1, "accumulate": 2, "lr": 0.01, "scheduler": "poly",
            "seed": 3, "log_every": 1, "device": "cpu"}  # fmt: skip


def test_torchrun_a_skipped_last_batch_of_a_window_still_averages_the_window_across_ranks(tmp_path):
    """2 processes x batch 2 == 1 process x batch 4 when the window's last batch is skipped: the finite
    batches' gradients must still be all-reduced (else each rank steps on its own gradient and they drift)."""
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(root)}
    script = root / "tests/engine/ddp_accumulate.py"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script),
           str(tmp_path / "ddp")]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240, cwd=root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [torch.load(tmp_path / "ddp" / f"rank{r}.pt") for r in (0, 1)]
    torch.manual_seed(0)
    single = Trainer(NaNOnBatches({1}), batch_size=4, out_dir=tmp_path / "one", **accumulate_run_kwargs())
    single.fit()
    assert single.global_step == 2 and single.nonfinite_steps == 1
    for name, value in single.module.state_dict().items():
        for state in ranks:
            torch.testing.assert_close(state[name], value, atol=1e-5, rtol=0, msg=name)
