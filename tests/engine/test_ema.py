"""Weight EMA: the average of the formula, and the warm-up that keeps short fine-tunes off the initial head."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from segkit.engine.ema import ModelEMA


def test_update_follows_the_formula_with_and_without_warmup():
    model = nn.Linear(3, 2)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    plain, warm = ModelEMA(model, 0.9), ModelEMA(model, 0.9, warmup=10)
    with torch.no_grad():
        model.weight.add_(1.0)
    plain.update(model, step=1)
    warm.update(model, step=1)
    d = 0.9 * (1 - math.exp(-1 / 10))  # Ultralytics' warm-up of the decay
    assert torch.allclose(plain.module.weight, 0.9 * start["weight"] + 0.1 * model.weight)
    assert torch.allclose(warm.module.weight, d * start["weight"] + (1 - d) * model.weight)
    assert warm.decay_at(10_000) == pytest.approx(0.9)


def test_warmup_forgets_a_random_initial_head_in_a_short_run():
    """After 200 updates towards fixed trained weights, a 0.999 EMA still holds 82% of the initial weights;
    with the warm-up (time constant 50 updates) almost none."""
    model = nn.Linear(4, 4)
    init = model.weight.detach().clone()
    plain, warm = ModelEMA(model, 0.999), ModelEMA(model, 0.999, warmup=50)
    with torch.no_grad():
        model.weight.zero_()  # the "trained" weights: the initial share is ema / init
    for step in range(1, 201):
        plain.update(model, step)
        warm.update(model, step)
    assert (plain.module.weight / init).mean().item() == pytest.approx(0.999**200, rel=1e-4)
    assert (warm.module.weight / init).abs().max().item() < 1e-3
    with pytest.raises(ValueError, match="ema_warmup"):
        ModelEMA(model, 0.9, warmup=-1)
