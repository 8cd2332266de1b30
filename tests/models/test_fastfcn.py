"""FastFCN: the JPU turns stride-32 backbone features into a stride-8 map; heads and the dilation branches."""

from __future__ import annotations

import pytest
import torch

from segkit.models import build_model
from segkit.models.fastfcn import JPU


def test_jpu_output_is_stride_8_while_backbone_is_stride_32() -> None:
    model = build_model("fastfcn", num_classes=3, encoder="resnet18", jpu_channels=8).eval()
    seen: dict[str, object] = {}
    model.model.encoder.register_forward_hook(lambda m, i, o: seen.__setitem__("encoder", [f.shape for f in o]))
    model.model.jpu.register_forward_hook(lambda m, i, o: seen.__setitem__("jpu", o.shape))
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 96))
    assert seen["encoder"][-1][-2:] == (2, 3)  # type: ignore[index]  # deepest stage: stride 32, not dilated
    assert seen["jpu"][-2:] == (8, 12)  # type: ignore[index]  # JPU output: stride 8
    assert out.shape == (1, 3, 64, 96)


def test_jpu_uses_dilations_1_2_4_8_with_separable_convs() -> None:
    jpu = JPU([8, 16, 32], width=4, out_channels=6)
    depthwise = [branch[0] for branch in jpu.dilated]
    assert [c.dilation for c in depthwise] == [(1, 1), (2, 2), (4, 4), (8, 8)]
    assert all(c.groups == c.in_channels == 12 for c in depthwise)
    out = jpu([torch.randn(2, 8, 8, 8), torch.randn(2, 16, 4, 4), torch.randn(2, 32, 2, 2)])
    assert out.shape == (2, 6, 8, 8)


@pytest.mark.parametrize("head", ["psp", "fcn"])
def test_other_heads(head: str) -> None:
    model = build_model("fastfcn", num_classes=2, encoder="resnet18", jpu_channels=8, head=head).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 2, 64, 64)


def test_unknown_head_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="head must be"):
        build_model("fastfcn", num_classes=2, encoder="resnet18", head="upernet")
