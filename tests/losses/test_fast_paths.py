"""The fast paths of the losses (analytic softmax backward, numpy Lovász sort) against the plain formulas."""

from __future__ import annotations

import pytest
import torch

from segkit.losses.functional_softmax import softmax_stats


def _plain_stats(logits, labels, valid, weight, power, per_image):
    """The formula softmax_stats implements, left to autograd."""
    p = torch.softmax(logits, 1) * valid.unsqueeze(1)
    p_y = p.gather(1, labels.unsqueeze(1))[:, 0]
    term = p**power if weight is None else p**power * weight
    sums = term.sum((2, 3) if per_image else (0, 2, 3)).reshape(-1, logits.shape[1])
    return p_y, sums


@pytest.mark.parametrize("power", [1, 2])
@pytest.mark.parametrize("with_weight", [False, True])
@pytest.mark.parametrize("per_image", [False, True])
@pytest.mark.parametrize("outputs", ["both", "p_y", "sums"])
def test_softmax_stats_matches_autograd_of_the_formula(power, with_weight, per_image, outputs):
    g = torch.Generator().manual_seed(power + 2 * with_weight + 4 * per_image)
    logits = torch.randn(2, 4, 5, 6, generator=g, dtype=torch.float64)
    target = torch.randint(0, 4, (2, 5, 6), generator=g)
    valid = torch.rand(2, 5, 6, generator=g) > 0.2
    labels = target.masked_fill(~valid, 0)
    weight = torch.rand(2, 4, 5, 6, generator=g, dtype=torch.float64) * 3 if with_weight else None
    # Random upstream gradients for each output (or none for an output the loss does not use).
    g_py = torch.randn(2, 5, 6, generator=g, dtype=torch.float64)
    g_s = torch.randn(2 if per_image else 1, 4, generator=g, dtype=torch.float64)

    def scalar(stats):
        p_y, sums = stats
        total = 0
        if outputs in ("both", "p_y"):
            total = total + (p_y * g_py).sum()
        if outputs in ("both", "sums"):
            total = total + (sums * g_s).sum()
        return total

    x1 = logits.clone().requires_grad_()
    x2 = logits.clone().requires_grad_()
    fast = softmax_stats(x1, labels, valid, weight, power, per_image)
    plain = _plain_stats(x2, labels, valid, weight, power, per_image)
    torch.testing.assert_close(fast[0], plain[0], rtol=0, atol=1e-15)
    torch.testing.assert_close(fast[1], plain[1], rtol=1e-14, atol=1e-14)
    scalar(fast).backward()
    scalar(plain).backward()
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-12, atol=1e-14)
    assert torch.all(x1.grad.permute(1, 0, 2, 3)[:, ~valid] == 0)  # ignored pixels get exactly no gradient
    assert torch.autograd.gradcheck(
        lambda x: scalar(softmax_stats(x, labels, valid, weight, power, per_image)), (x1.detach().requires_grad_(),)
    )


def test_softmax_stats_rejects_other_powers():
    x = torch.randn(1, 2, 3, 3)
    with pytest.raises(ValueError, match="power"):
        softmax_stats(x, torch.zeros(1, 3, 3, dtype=torch.long), torch.ones(1, 3, 3, dtype=torch.bool), power=3)
