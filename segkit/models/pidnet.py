"""PIDNet (Xu et al. CVPR 2023): proportional (detail), integral (context) and derivative (boundary) branches."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from segkit.models._dual_branch import (
    DAPPM,
    BasicBlock,
    Bottleneck,
    SegmentHead,
    bn_relu_conv,
    check_input_scale,
    conv_bn,
    init_weights,
    make_stage,
    pooled_branches,
    resize,
    scale_input,
)
from segkit.models.registry import MODELS
from segkit.models.weights import load_weights

__all__ = ["PAPPM", "PIDNet", "Bag", "LightBag", "PagFM", "pidnet_s"]


class PAPPM(nn.Module):
    """Parallel Aggregation PPM: DAPPM's pooled contexts, each added to the 1x1 branch and processed by one
    grouped 3x3 convolution together (parallel instead of DAPPM's chain: cheaper for the small models).

    Shape:
        ``(N, cin, H, W)`` -> ``(N, cout, H, W)``.
    """

    def __init__(self, cin: int, width: int, cout: int) -> None:
        super().__init__()
        self.scale0 = bn_relu_conv(cin, width)
        self.scales = pooled_branches(cin, width)
        self.process = bn_relu_conv(4 * width, 4 * width, 3, groups=4)
        self.compression = bn_relu_conv(5 * width, cout)
        self.shortcut = bn_relu_conv(cin, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        base = self.scale0(x)
        pooled = self.process(torch.cat([resize(scale(x), x) + base for scale in self.scales], dim=1))
        return self.compression(torch.cat([base, pooled], dim=1)) + self.shortcut(x)


class PagFM(nn.Module):
    """Pixel-attention-guided fusion: the P branch ``x`` takes from the I branch ``y`` where their 1x1
    embeddings agree, ``sigma = sigmoid(<f_x(x), up(f_y(y))>)``, ``out = (1 - sigma) x + sigma up(y)``.

    Shape:
        ``x`` ``(N, C, H, W)``, ``y`` ``(N, C, h, w)`` -> ``(N, C, H, W)``.
    """

    def __init__(self, channels: int, mid: int) -> None:
        super().__init__()
        self.f_x = conv_bn(channels, mid)
        self.f_y = conv_bn(channels, mid)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        sim = torch.sigmoid((self.f_x(x) * resize(self.f_y(y), x)).sum(dim=1, keepdim=True))
        return (1 - sim) * x + sim * resize(y, x)


class Bag(nn.Module):
    """Boundary-attention-guided fusion: ``conv(sigma(d) p + (1 - sigma(d)) i)`` with BN, ReLU, 3x3 conv.

    Detail (P) is trusted on boundaries, context (I) elsewhere. Used by PIDNet-L.

    Shape:
        ``p``, ``i``, ``d`` ``(N, C, H, W)`` -> ``(N, cout, H, W)``.
    """

    def __init__(self, channels: int, cout: int) -> None:
        super().__init__()
        self.conv = bn_relu_conv(channels, cout, 3)

    def forward(self, p: torch.Tensor, i: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        att = torch.sigmoid(d)
        return self.conv(att * p + (1 - att) * i)


class LightBag(nn.Module):
    """Light Bag (PIDNet-S/M): ``conv_p((1 - sigma(d)) i + p) + conv_i(i + sigma(d) p)`` with 1x1 conv + BN.

    Shape:
        ``p``, ``i``, ``d`` ``(N, C, H, W)`` -> ``(N, cout, H, W)``.
    """

    def __init__(self, channels: int, cout: int) -> None:
        super().__init__()
        self.conv_p = conv_bn(channels, cout)
        self.conv_i = conv_bn(channels, cout)

    def forward(self, p: torch.Tensor, i: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        att = torch.sigmoid(d)
        return self.conv_p((1 - att) * i + p) + self.conv_i(i + att * p)


class PIDNet(nn.Module):
    """PIDNet: a two-branch network (like DDRNet) plus a boundary branch, fused like a PID controller.

    The I branch (context) runs to stride 64 and ends in PAPPM (DAPPM for PIDNet-L). The P branch
    (detail) stays at stride 8 and takes context from I through ``PagFM`` after stages 3 and 4. The D
    branch (derivative: boundaries) stays at stride 8 and adds the I branch's features (3x3 conv,
    upsampled). ``LightBag``/``Bag`` fuses P and I with the D branch's sigmoid as the attention, and the
    head predicts from the fusion. In training, two extra heads give the P branch's semantic logits
    after stage 3 (auxiliary loss) and the D branch's 1-channel boundary logits after stage 4.

    Every spatial size is taken from the tensors themselves, so any H, W works without padding.

    The registry has PIDNet-S (``pidnet_s``). The larger variants of the official code are this class:
    PIDNet-L ``PIDNet(C, planes=64, ppm_planes=112, head_planes=256, m=3, n=4)`` (36.9M parameters and
    274.9 GMACs at 2048x1024 with 19 classes, the paper's 36.9M and 275.8 GFLOPs) and PIDNet-M
    ``PIDNet(C, planes=64)`` (28.5M and 177.3 GMACs with the official code's configuration).

    Args:
        num_classes: output channels.
        in_channels: input image channels.
        planes: first-stage width (32 for S, 64 for M and L).
        ppm_planes: pyramid pooling branch width (96 for S/M, 112 for L).
        head_planes: semantic head width (128 for S/M, 256 for L).
        m: basic blocks in stages 1-2 and the P branch (2; 3 for L).
        n: basic blocks in stages 3-4 of the I branch (3; 4 for L).
        aux: build the P and D heads (returned in training mode only).
        input_scale: the network sees the image resized by this factor (0 < s <= 1). Eval-mode logits come
            back at the image's size; training outputs stay at the network's size ``(floor(H*s), floor(W*s))``
            and the Trainer samples the mask there (``target_at_network_size``).

    Shape:
        input ``(N, in_channels, H, W)``. Train mode with ``aux``: ``(main (N, C, H', W'), p_aux (N, C, H', W'),
        boundary (N, 1, H', W'))``, the main logits first; otherwise (and in eval mode) the main logits.
        ``H', W'`` are ``H, W`` in eval mode and times ``input_scale`` (floored) in train mode.
    """

    default_loss = "pidnet_loss"

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        planes: int = 32,
        ppm_planes: int = 96,
        head_planes: int = 128,
        m: int = 2,
        n: int = 3,
        aux: bool = True,
        input_scale: float = 1.0,
    ) -> None:
        super().__init__()
        self.input_scale = check_input_scale(input_scale)
        p = planes
        # The stem convolutions carry a bias in the reference code (kept: same parameter count).
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, p, 3, 2, 1),
            nn.BatchNorm2d(p),
            nn.ReLU(inplace=True),
            nn.Conv2d(p, p, 3, 2, 1),
            nn.BatchNorm2d(p),
            nn.ReLU(inplace=True),
        )
        self.layer1 = make_stage(BasicBlock, p, p, m)
        self.layer2 = make_stage(BasicBlock, p, 2 * p, m, stride=2)
        # I branch (strides 16, 32, 64).
        self.layer3 = make_stage(BasicBlock, 2 * p, 4 * p, n, stride=2)
        self.layer4 = make_stage(BasicBlock, 4 * p, 8 * p, n, stride=2)
        self.layer5 = make_stage(Bottleneck, 8 * p, 8 * p, 2, stride=2)
        # P branch (stride 8) and its fusion with I.
        self.layer3_p = make_stage(BasicBlock, 2 * p, 2 * p, m)
        self.layer4_p = make_stage(BasicBlock, 2 * p, 2 * p, m)
        self.layer5_p = make_stage(Bottleneck, 2 * p, 2 * p, 1)
        self.compression3 = conv_bn(4 * p, 2 * p)
        self.compression4 = conv_bn(8 * p, 2 * p)
        self.pag3 = PagFM(2 * p, p)
        self.pag4 = PagFM(2 * p, p)
        # D branch (stride 8): lighter for S/M (m == 2), as in the reference code.
        light = m == 2
        d3 = p if light else 2 * p
        self.layer3_d = BasicBlock(2 * p, d3, relu=False)
        self.layer4_d: nn.Module = make_stage(Bottleneck, p, p, 1) if light else BasicBlock(2 * p, 2 * p, relu=False)
        self.layer5_d = make_stage(Bottleneck, 2 * p, 2 * p, 1)
        self.diff3 = conv_bn(4 * p, d3, 3)
        self.diff4 = conv_bn(8 * p, 2 * p, 3)
        self.spp: nn.Module = PAPPM(16 * p, ppm_planes, 4 * p) if light else DAPPM(16 * p, ppm_planes, 4 * p)
        self.fuse: nn.Module = LightBag(4 * p, 4 * p) if light else Bag(4 * p, 4 * p)
        self.head = SegmentHead(4 * p, head_planes, num_classes)
        self.p_head = SegmentHead(2 * p, head_planes, num_classes) if aux else None
        self.d_head = SegmentHead(2 * p, p, 1) if aux else None
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # Training outputs come at the size the network sees (the loss runs there: target_at_network_size),
        # evaluation logits at the image's.
        net = scale_input(x, self.input_scale)
        output_like = net if self.training else x
        x = F.relu(self.layer2(F.relu(self.layer1(self.stem(net)))))
        p = self.layer3_p(x)
        d = self.layer3_d(x)
        x = F.relu(self.layer3(x))
        p = self.pag3(p, self.compression3(x))
        d = d + resize(self.diff3(x), d)
        p_aux = p
        x = F.relu(self.layer4(x))
        p = self.layer4_p(F.relu(p))
        d = self.layer4_d(F.relu(d))
        p = self.pag4(p, self.compression4(x))
        d = d + resize(self.diff4(x), d)
        d_aux = d
        p = self.layer5_p(F.relu(p))
        d = self.layer5_d(F.relu(d))
        i = resize(self.spp(self.layer5(x)), p)
        logits = resize(self.head(self.fuse(p, i, d)), output_like)
        if self.p_head is None or self.d_head is None or not self.training:
            return logits
        return logits, resize(self.p_head(p_aux), output_like), resize(self.d_head(d_aux), output_like)


@MODELS.register("pidnet_s")
def pidnet_s(
    num_classes: int,
    in_channels: int = 3,
    aux: bool = True,
    weights: str | None = None,
    input_scale: float = 1.0,
) -> nn.Module:
    """PIDNet-S (Xu et al. 2023): 7.6M parameters, 47.6 GFLOPs at 2048x1024 in the paper's table.

    Args:
        num_classes: output channels (classes, background included).
        in_channels: input image channels.
        aux: keep the P (semantic) and D (boundary) heads; training mode then returns
            ``(main, p_aux, boundary)`` logits, all at the input size.
        weights: path to a local checkpoint loaded after building.
        input_scale: run the network on the image resized by this factor (``PIDNet``'s ``input_scale``).

    Returns:
        A ``PIDNet`` (``default_loss = "pidnet_loss"``); logits at the input size for any H, W.

    Example:
        >>> model = build_model("pidnet_s", num_classes=19).eval()
        >>> model(torch.randn(1, 3, 97, 131)).shape
        torch.Size([1, 19, 97, 131])
    """
    model = PIDNet(
        num_classes, in_channels, planes=32, ppm_planes=96, head_planes=128, m=2, n=3, aux=aux, input_scale=input_scale
    )
    return load_weights(model, weights, num_classes) if weights is not None else model
