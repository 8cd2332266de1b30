"""Combinations of losses: weighted sums, per-term reporting, and extra inputs routed to their own term."""

import torch

from segkit.losses import build_loss
from segkit.losses.distance import WithDistanceMaps  # noqa: F401  (the public way to precompute maps)


def test_weighted_sum_and_terms():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 8, 8, generator=g)
    target = torch.randint(0, 3, (2, 8, 8), generator=g)
    combo = build_loss({"ce": 1.0, "dice": 0.5})
    terms = combo.forward_terms(logits, target)
    assert torch.allclose(terms["ce"], build_loss("ce")(logits, target))
    assert torch.allclose(terms["dice"], 0.5 * build_loss("dice")(logits, target))
    assert torch.allclose(combo(logits, target), terms["ce"] + terms["dice"])


def test_extra_inputs_reach_only_the_term_that_declares_them():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 3, 8, 8, generator=g)
    target = torch.randint(0, 3, (2, 8, 8), generator=g)
    combo = build_loss("ce+iou_balanced")
    assert combo.extra_inputs == ("iou",)
    iou = torch.rand(2, 8, 8, generator=g)
    total = combo(logits, target, iou=iou)
    expected = build_loss("ce")(logits, target) + build_loss("iou_balanced")(logits, target, iou=iou)
    assert torch.allclose(total, expected)
