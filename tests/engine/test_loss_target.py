"""``target_at_network_size``: the mask a loss sees for logits a downscaling model gives at its own size."""

from __future__ import annotations

import torch
from torch import nn

from segkit.engine.loss_target import target_at_network_size


class _Scaled(nn.Module):
    def __init__(self, input_scale: float) -> None:
        super().__init__()
        self.input_scale = input_scale


def test_half_scale_samples_the_centre_of_each_block_and_keeps_ignore() -> None:
    target = torch.randint(0, 5, (2, 10, 14))
    target[0, :3] = 255
    logits = torch.zeros(2, 5, 5, 7)
    sampled = target_at_network_size(target, (logits, logits), _Scaled(0.5))
    assert sampled.dtype == target.dtype
    torch.testing.assert_close(sampled, target[:, 1::2, 1::2])  # rows/columns 1, 3, 5, ...
    assert (sampled[0, :1] == 255).all()


def test_odd_sides_and_other_scales_follow_the_floor_size() -> None:
    target = torch.arange(11 * 13).reshape(1, 11, 13) % 7
    # 0.75: floor(11 * .75) = 8, floor(13 * .75) = 9; each output pixel takes the source pixel under its centre,
    # floor((i + 0.5) * 11 / 8).
    sampled = target_at_network_size(target, torch.zeros(1, 7, 8, 9), _Scaled(0.75))
    rows = [int((i + 0.5) * 11 / 8) for i in range(8)]
    cols = [int((j + 0.5) * 13 / 9) for j in range(9)]
    torch.testing.assert_close(sampled, target[:, rows][:, :, cols])


def test_anything_else_is_left_for_the_loss_to_judge() -> None:
    target = torch.zeros(1, 10, 10, dtype=torch.long)
    assert target_at_network_size(target, torch.zeros(1, 2, 10, 10), _Scaled(0.5)) is target  # full-size logits
    assert target_at_network_size(target, torch.zeros(1, 2, 4, 4), _Scaled(0.5)) is target  # not the scale's size
    assert target_at_network_size(target, torch.zeros(1, 2, 5, 5), nn.Identity()) is target  # no input_scale
