"""DDRNet (Hong et al. 2021): a high-resolution and a low-resolution branch with bilateral fusion, DAPPM context."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from segkit.models._dual_branch import (
    DAPPM,
    BasicBlock,
    Bottleneck,
    SegmentHead,
    check_input_scale,
    conv_bn,
    init_weights,
    make_stage,
    resize,
    scale_input,
)
from segkit.models.registry import MODELS
from segkit.models.weights import load_weights

__all__ = ["DDRNet", "ddrnet_23", "ddrnet_23_slim"]


class DDRNet(nn.Module):
    """Deep Dual-Resolution Network for real-time semantic segmentation.

    A ResNet-like trunk to stride 8 splits into a low-resolution branch (strides 16, 32, 64) and a
    high-resolution branch that stays at stride 8. After stages 3 and 4 the branches exchange features
    (bilateral fusion: a strided 3x3 conv down, a 1x1 conv and bilinear upsampling up). DAPPM pools
    context at stride 64; its upsampled output is added to the high-resolution branch and the sum goes
    through the head. With ``aux``, a second head on the high-resolution branch after stage 3 gives the
    deep-supervision logits used in training (weight 0.4 in the paper).

    Every spatial size is taken from the tensors themselves, so any H, W works without padding.

    Args:
        num_classes: output channels.
        in_channels: input image channels.
        planes: width of the first stage (32 for DDRNet-23-slim, 64 for DDRNet-23).
        ppm_planes: DAPPM branch width (128).
        head_planes: head width (64 slim, 128 full).
        aux: build the auxiliary head (returned in training mode only).
        input_scale: the network sees the image resized by this factor (0 < s <= 1). Eval-mode logits come
            back at the image's size; training outputs stay at the network's size ``(floor(H*s), floor(W*s))``
            and the Trainer samples the mask there (``target_at_network_size``), so the loss and its
            upsampling run on s^2 of the pixels. 0.5 costs about a quarter of the compute per image.

    Shape:
        input ``(N, in_channels, H, W)``. Train mode with ``aux``: ``(main (N, C, H', W'), aux (N, C, H', W'))``;
        otherwise (and always in eval mode) the main logits; ``H', W'`` are ``H, W`` in eval mode and times
        ``input_scale`` (floored) in train mode.
    """

    default_loss = "ddrnet_loss"

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        planes: int = 32,
        ppm_planes: int = 128,
        head_planes: int = 64,
        aux: bool = True,
        input_scale: float = 1.0,
    ) -> None:
        super().__init__()
        self.input_scale = check_input_scale(input_scale)
        p, high = planes, planes * 2
        # The stem convolutions carry a bias in the reference code (kept: same parameter count).
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, p, 3, 2, 1),
            nn.BatchNorm2d(p),
            nn.ReLU(inplace=True),
            nn.Conv2d(p, p, 3, 2, 1),
            nn.BatchNorm2d(p),
            nn.ReLU(inplace=True),
        )
        self.layer1 = make_stage(BasicBlock, p, p, 2)
        self.layer2 = make_stage(BasicBlock, p, 2 * p, 2, stride=2)
        # Low-resolution branch (strides 16, 32, 64).
        self.layer3 = make_stage(BasicBlock, 2 * p, 4 * p, 2, stride=2)
        self.layer4 = make_stage(BasicBlock, 4 * p, 8 * p, 2, stride=2)
        self.layer5 = make_stage(Bottleneck, 8 * p, 8 * p, 1, stride=2)
        self.spp = DAPPM(16 * p, ppm_planes, 4 * p)
        # High-resolution branch (stride 8).
        self.layer3_high = make_stage(BasicBlock, 2 * p, high, 2)
        self.layer4_high = make_stage(BasicBlock, high, high, 2)
        self.layer5_high = make_stage(Bottleneck, high, high, 1)
        # Bilateral fusion: high -> low by strided convs, low -> high by 1x1 conv then upsampling.
        self.down3 = conv_bn(high, 4 * p, 3, 2)
        self.down4 = nn.Sequential(
            nn.Conv2d(high, 4 * p, 3, 2, 1, bias=False),
            nn.BatchNorm2d(4 * p),
            nn.ReLU(inplace=True),
            conv_bn(4 * p, 8 * p, 3, 2),
        )
        self.compression3 = conv_bn(4 * p, high)
        self.compression4 = conv_bn(8 * p, high)
        self.head = SegmentHead(4 * p, head_planes, num_classes)
        self.aux_head = SegmentHead(high, head_planes, num_classes) if aux else None
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        # Training outputs come at the size the network sees (the loss runs there: target_at_network_size),
        # evaluation logits at the image's.
        net = scale_input(x, self.input_scale)
        output_like = net if self.training else x
        x = self.layer2(F.relu(self.layer1(self.stem(net))))
        low3 = self.layer3(F.relu(x))
        high = self.layer3_high(F.relu(x))
        low = low3 + self.down3(F.relu(high))
        high = high + resize(self.compression3(F.relu(low3)), high)
        aux_in = high
        low4 = self.layer4(F.relu(low))
        high = self.layer4_high(F.relu(high))
        low = low4 + self.down4(F.relu(high))
        high = high + resize(self.compression4(F.relu(low4)), high)
        high = self.layer5_high(F.relu(high))
        context = resize(self.spp(self.layer5(F.relu(low))), high)
        logits = resize(self.head(context + high), output_like)
        if self.aux_head is None or not self.training:
            return logits
        return logits, resize(self.aux_head(aux_in), output_like)


def _build(
    num_classes: int,
    in_channels: int,
    planes: int,
    head_planes: int,
    aux: bool,
    weights: str | None,
    input_scale: float,
) -> nn.Module:
    model = DDRNet(num_classes, in_channels, planes, 128, head_planes, aux, input_scale)
    return load_weights(model, weights, num_classes) if weights is not None else model


@MODELS.register("ddrnet_23_slim")
def ddrnet_23_slim(
    num_classes: int,
    in_channels: int = 3,
    aux: bool = True,
    weights: str | None = None,
    input_scale: float = 1.0,
) -> nn.Module:
    """DDRNet-23-slim (Hong et al. 2021): 5.7M parameters, 36.3 GFLOPs at 2048x1024 in the paper's table.

    Args:
        num_classes: output channels (classes, background included).
        in_channels: input image channels.
        aux: keep the deep-supervision head (training mode returns ``(main, aux)`` logits).
        weights: path to a local checkpoint loaded after building.
        input_scale: run the network on the image resized by this factor (``DDRNet``'s ``input_scale``).

    Returns:
        A ``DDRNet`` (``default_loss = "ddrnet_loss"``: OHEM cross-entropy on the main logits plus 0.4 times
        on the auxiliary ones). Any H, W; logits at the input size.

    Example:
        >>> model = build_model("ddrnet_23_slim", num_classes=19).eval()
        >>> model(torch.randn(1, 3, 97, 131)).shape
        torch.Size([1, 19, 97, 131])
    """
    return _build(num_classes, in_channels, 32, 64, aux, weights, input_scale)


@MODELS.register("ddrnet_23")
def ddrnet_23(
    num_classes: int,
    in_channels: int = 3,
    aux: bool = True,
    weights: str | None = None,
    input_scale: float = 1.0,
) -> nn.Module:
    """DDRNet-23 (Hong et al. 2021): DDRNet-23-slim at twice the width, 20.1M parameters, 143.1 GFLOPs.

    Args:
        num_classes: output channels (classes, background included).
        in_channels: input image channels.
        aux: keep the deep-supervision head (training mode returns ``(main, aux)`` logits).
        weights: path to a local checkpoint loaded after building.
        input_scale: run the network on the image resized by this factor (``DDRNet``'s ``input_scale``).

    Returns:
        A ``DDRNet`` trained by default with ``ddrnet_loss``; logits at the input size for any H, W.
    """
    return _build(num_classes, in_channels, 64, 128, aux, weights, input_scale)
