"""Blocks shared by the two-branch real-time networks (DDRNet, PIDNet): residual stages, heads, pyramid pooling."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "DAPPM",
    "BasicBlock",
    "Bottleneck",
    "SegmentHead",
    "bn_relu_conv",
    "conv_bn",
    "init_weights",
    "make_stage",
    "pooled_branches",
    "resize",
]


def resize(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Bilinear resize (``align_corners=False``) of ``x`` to the spatial size of the tensor ``like``.

    Sizes come from the tensors themselves rather than ``H // 8`` (the reference code's, which needs H, W
    divisible by 64), so the branches stay aligned for any input size. There is no shortcut for equal sizes:
    a traced graph (ONNX) then keeps every resize and takes inputs of other sizes.
    """
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


def scale_input(x: torch.Tensor, scale: float) -> torch.Tensor:
    """``x`` resized by ``scale`` (bilinear, ``align_corners=False``; at 0.5 that is the mean of each 2x2 block).

    The real-time models' ``input_scale``: the network sees the image at ``scale`` times its size and its
    logits are resized back to the image, the way real-time papers run Cityscapes at 0.5 or 0.75 of the frame.
    The cost of a step falls with the square of ``scale``; thin objects lose pixels.
    """
    if scale == 1.0:
        return x
    return F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)


def check_input_scale(scale: float) -> float:
    """``scale`` as a float, or ValueError unless ``0 < scale <= 1``."""
    if not 0.0 < float(scale) <= 1.0:
        raise ValueError(f"input_scale: expected 0 < input_scale <= 1, got {scale!r}")
    return float(scale)


def conv_bn(cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1) -> nn.Sequential:
    """Convolution (no bias, 'same' padding) followed by BatchNorm, no activation."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)
    )


def bn_relu_conv(cin: int, cout: int, kernel: int = 1, groups: int = 1) -> nn.Sequential:
    """Pre-activation unit of the pyramid pooling modules and heads: BatchNorm, ReLU, convolution."""
    return nn.Sequential(
        nn.BatchNorm2d(cin),
        nn.ReLU(inplace=True),
        nn.Conv2d(cin, cout, kernel, padding=kernel // 2, groups=groups, bias=False),
    )


class BasicBlock(nn.Module):
    """ResNet basic block (two 3x3 convolutions); ``relu=False`` leaves the sum un-activated.

    Args:
        cin: input channels.
        planes: output channels.
        stride: stride of the first convolution.
        relu: apply ReLU after the residual sum.

    Shape:
        ``(N, cin, H, W)`` -> ``(N, planes, ceil(H / stride), ceil(W / stride))``.
    """

    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int = 1, relu: bool = True) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, planes, 3, stride, 1, bias=False),
            nn.BatchNorm2d(planes),
            nn.ReLU(inplace=True),
            conv_bn(planes, planes, 3),
        )
        self.shortcut = conv_bn(cin, planes, 1, stride) if stride != 1 or cin != planes else nn.Identity()
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x) + self.shortcut(x)
        return F.relu(out) if self.relu else out


class Bottleneck(nn.Module):
    """ResNet bottleneck with expansion 2 (1x1, strided 3x3, 1x1 to ``2 * planes``); no ReLU after the sum
    by default, as in the DDRNet and PIDNet reference code.

    Shape:
        ``(N, cin, H, W)`` -> ``(N, 2 * planes, ceil(H / stride), ceil(W / stride))``.
    """

    expansion = 2

    def __init__(self, cin: int, planes: int, stride: int = 1, relu: bool = False) -> None:
        super().__init__()
        out = planes * self.expansion
        self.body = nn.Sequential(
            nn.Conv2d(cin, planes, 1, bias=False),
            nn.BatchNorm2d(planes),
            nn.ReLU(inplace=True),
            nn.Conv2d(planes, planes, 3, stride, 1, bias=False),
            nn.BatchNorm2d(planes),
            nn.ReLU(inplace=True),
            conv_bn(planes, out),
        )
        self.shortcut = conv_bn(cin, out, 1, stride) if stride != 1 or cin != out else nn.Identity()
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x) + self.shortcut(x)
        return F.relu(out) if self.relu else out


def make_stage(
    block: type[BasicBlock | Bottleneck], cin: int, planes: int, blocks: int, stride: int = 1
) -> nn.Sequential:
    """``blocks`` residual blocks, the first strided; the ReLUs placed as in the reference ``_make_layer``.

    The first block keeps its default (basic: ReLU, bottleneck: none), the inner ones end in ReLU and the
    last of two or more does not: the networks apply ReLU themselves where a stage's output is read, since
    the raw sum is what the other branch adds in.
    """
    layers: list[nn.Module] = [block(cin, planes, stride)]
    width = planes * block.expansion
    for i in range(1, blocks):
        layers.append(block(width, planes, 1, relu=i < blocks - 1))
    return nn.Sequential(*layers)


class SegmentHead(nn.Module):
    """Prediction head: BN, ReLU, 3x3 conv to ``mid`` channels, BN, ReLU, 1x1 conv (with bias) to ``cout``.

    Shape:
        ``(N, cin, H, W)`` -> ``(N, cout, H, W)``.
    """

    def __init__(self, cin: int, mid: int, cout: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            bn_relu_conv(cin, mid, 3), nn.BatchNorm2d(mid), nn.ReLU(inplace=True), nn.Conv2d(mid, cout, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def pooled_branches(cin: int, width: int) -> nn.ModuleList:
    """The four pooled inputs of DAPPM/PAPPM: average pools (5/2, 9/4, 17/8, global), then BN, ReLU, 1x1 conv."""
    pools: list[nn.Module] = [
        nn.AvgPool2d(5, 2, 2),
        nn.AvgPool2d(9, 4, 4),
        nn.AvgPool2d(17, 8, 8),
        nn.AdaptiveAvgPool2d(1),
    ]
    return nn.ModuleList(nn.Sequential(pool, *bn_relu_conv(cin, width)) for pool in pools)


class DAPPM(nn.Module):
    """Deep Aggregation Pyramid Pooling Module (DDRNet): pooled contexts fused hierarchically, each scale's
    upsampled map added to the previous scale's output before a 3x3 conv, then concatenated, compressed
    and added to a 1x1 shortcut.

    Args:
        cin: input channels.
        width: channels of each branch.
        cout: output channels.

    Shape:
        ``(N, cin, H, W)`` -> ``(N, cout, H, W)``.
    """

    def __init__(self, cin: int, width: int, cout: int) -> None:
        super().__init__()
        self.scale0 = bn_relu_conv(cin, width)
        self.scales = pooled_branches(cin, width)
        self.process = nn.ModuleList(bn_relu_conv(width, width, 3) for _ in range(4))
        self.compression = bn_relu_conv(5 * width, cout)
        self.shortcut = bn_relu_conv(cin, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [self.scale0(x)]
        for scale, process in zip(self.scales, self.process):
            outs.append(process(resize(scale(x), x) + outs[-1]))
        return self.compression(torch.cat(outs, dim=1)) + self.shortcut(x)


def init_weights(model: nn.Module) -> None:
    """Kaiming-normal (fan_out) convolutions and unit BatchNorm, as in the reference implementations, except
    the heads' classifiers: normal with std 0.01 and zero bias (mmseg's ``conv_seg`` rule).

    The small classifier makes the first predictions near-uniform (initial CE about ``log C``) instead of
    logits in the hundreds that an untrained network in eval mode (unit running variance) would give.
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    for m in model.modules():
        if isinstance(m, SegmentHead):
            classifier = m.body[-1]
            assert isinstance(classifier, nn.Conv2d) and classifier.bias is not None  # built just above
            nn.init.normal_(classifier.weight, std=0.01)
            nn.init.zeros_(classifier.bias)
