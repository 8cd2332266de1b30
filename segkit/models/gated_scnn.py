"""Gated-SCNN (Takikawa et al. 2019): a regular stream, a gated shape stream that predicts boundaries, and ASPP fusion."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from segkit.models._utils import PadToMultiple, download_guard, hf_cache_dir
from segkit.models.registry import MODELS
from segkit.models.weights import load_weights

__all__ = ["GatedSCNN", "GatedSpatialConv", "gated_scnn", "image_gradient"]


def _cbr(cin: int, cout: int, kernel: int = 1, dilation: int = 1) -> nn.Sequential:
    pad = dilation * (kernel // 2)
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, padding=pad, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


def image_gradient(x: torch.Tensor) -> torch.Tensor:
    """Sobel gradient magnitude of the channel-mean image, scaled to [0, 1] per image.

    Stands in for the paper's Canny edges: same role (an image-edge cue for the fusion), but it runs
    on the device, in the graph, and exports to ONNX. No gradient flows through it.

    Shape:
        ``(N, C, H, W)`` -> ``(N, 1, H, W)``.
    """
    with torch.no_grad():
        gray = x.mean(dim=1, keepdim=True)
        kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=x.dtype, device=x.device)
        kernels = torch.stack([kx, kx.t()]).unsqueeze(1)
        g = F.conv2d(F.pad(gray, (1, 1, 1, 1), mode="replicate"), kernels)
        mag = g.pow(2).sum(dim=1, keepdim=True).add(1e-12).sqrt()
        return mag / mag.amax(dim=(2, 3), keepdim=True).clamp_min(1e-6)


class GatedSpatialConv(nn.Module):
    """Gated convolution of the shape stream: an attention map computed from the shape features and a
    1-channel regular-stream signal rescales the shape features (``x * (alpha + 1)``) before a 1x1 conv.

    Args:
        channels: shape-stream channels (in and out).

    Shape:
        ``x`` ``(N, channels, H, W)``, ``gate`` ``(N, 1, H, W)`` -> ``(N, channels, H, W)``.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.attention = nn.Sequential(
            nn.BatchNorm2d(channels + 1),
            nn.Conv2d(channels + 1, channels + 1, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels + 1, 1, 1),
            nn.BatchNorm2d(1),
            nn.Sigmoid(),
        )
        self.conv = nn.Conv2d(channels, channels, 1, bias=False)

    def forward(self, x: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        alpha = self.attention(torch.cat([x, gate], dim=1))
        return self.conv(x * (alpha + 1))


class _ResBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.body(x))


class _EdgeASPP(nn.Module):
    """ASPP (image pooling, 1x1, three dilated 3x3) plus a branch fed by the boundary map (the fusion)."""

    def __init__(self, cin: int, width: int, rates: tuple[int, ...]) -> None:
        super().__init__()
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), _cbr(cin, width))
        self.edge = _cbr(1, width)
        self.branches = nn.ModuleList([_cbr(cin, width)] + [_cbr(cin, width, 3, r) for r in rates])
        self.project = _cbr(width * (len(rates) + 3), width)

    def forward(self, x: torch.Tensor, edge: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        pooled = self.pool(x).expand(-1, -1, size[0], size[1])
        edge = self.edge(F.interpolate(edge, size=size, mode="bilinear", align_corners=False))
        return self.project(torch.cat([pooled, edge, *(b(x) for b in self.branches)], dim=1))


class GatedSCNN(nn.Module):
    """Two-stream segmentation network with a boundary-predicting shape stream.

    Regular stream: an smp/timm encoder run at ``output_stride`` (dilated, 8 as in the paper). Shape
    stream, at the stride-2 resolution: the stride-2 features go through residual blocks and three
    gated convolutions, gated by 1-channel projections of the stride 4, 8 and deepest features; a 1x1
    conv gives the boundary logits. Fusion: the boundary probability and the image gradient are merged
    into one attention map that feeds an extra ASPP branch; a DeepLabV3+-style decoder (stride-4 skip)
    produces the segmentation.

    Args:
        num_classes: output channels.
        encoder: smp/timm encoder name (5 stages).
        encoder_weights: None or "imagenet".
        in_channels: input image channels.
        output_stride: regular-stream output stride, 8 or 16 (dilation), or 32.
        aspp_channels: ASPP and decoder width (256 in the paper).
        shape_channels: widths of the three shape-stream stages (32, 16, 8 in the paper).

    Shape:
        input ``(N, in_channels, H, W)``, H, W multiples of 32 (``gated_scnn`` pads for you).
        Train mode: ``(seg_logits (N, num_classes, H, W), edge_logits (N, 1, H, W))``.
        Eval mode: ``seg_logits`` only.
    """

    default_loss = "gated_scnn_loss"

    def __init__(
        self,
        num_classes: int,
        encoder: str = "resnet50",
        encoder_weights: str | None = None,
        in_channels: int = 3,
        output_stride: int = 8,
        aspp_channels: int = 256,
        shape_channels: tuple[int, int, int] = (32, 16, 8),
    ) -> None:
        super().__init__()
        with download_guard(
            f"encoder_weights={encoder_weights!r} for encoder {encoder!r}", "the Hugging Face Hub", hf_cache_dir()
        ):
            # Imported here: smp (with timm and torchvision) costs seconds at `import segkit`.
            from segmentation_models_pytorch.encoders import get_encoder

            self.encoder = get_encoder(
                encoder, in_channels=in_channels, depth=5, weights=encoder_weights, output_stride=output_stride
            )
        ch = list(self.encoder.out_channels)
        c1, c2, c3 = shape_channels
        self.gate_inputs = nn.ModuleList(nn.Conv2d(ch[i], 1, 1) for i in (2, 3, 5))
        self.shape_in = nn.Conv2d(ch[1], c1, 1)
        self.res = nn.ModuleList([_ResBlock(c1), _ResBlock(c1), _ResBlock(c2)])
        self.reduce = nn.ModuleList([nn.Conv2d(c1, c1, 1), nn.Conv2d(c1, c2, 1), nn.Conv2d(c2, c3, 1)])
        self.gates = nn.ModuleList([GatedSpatialConv(c1), GatedSpatialConv(c2), GatedSpatialConv(c3)])
        self.edge_out = nn.Conv2d(c3, 1, 1, bias=False)
        self.fuse_edges = nn.Conv2d(2, 1, 1, bias=False)
        rates = tuple(r * 8 // output_stride for r in (6, 12, 18)) if output_stride <= 16 else (1, 2, 3)
        self.aspp = _EdgeASPP(ch[-1], aspp_channels, rates)
        self.skip = _cbr(ch[2], 48)
        self.decoder = nn.Sequential(
            _cbr(aspp_channels + 48, aspp_channels, 3),
            _cbr(aspp_channels, aspp_channels, 3),
            nn.Conv2d(aspp_channels, num_classes, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        size = x.shape[-2:]
        feats = self.encoder(x)
        shape_size = feats[1].shape[-2:]
        s = self.shape_in(feats[1])
        # Each stage: residual block, 1x1 narrowing, then a gate driven by a deeper regular-stream map.
        for res, reduce, gate, gate_input, i in zip(self.res, self.reduce, self.gates, self.gate_inputs, (2, 3, 5)):
            g = F.interpolate(gate_input(feats[i]), size=shape_size, mode="bilinear", align_corners=False)
            s = gate(reduce(res(s)), g)
        edge_logits = self.edge_out(s)
        grad = image_gradient(F.interpolate(x, size=shape_size, mode="bilinear", align_corners=False))
        attention = torch.sigmoid(self.fuse_edges(torch.cat([torch.sigmoid(edge_logits), grad], dim=1)))
        y = self.aspp(feats[-1], attention)
        skip = self.skip(feats[2])
        y = F.interpolate(y, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        seg = F.interpolate(self.decoder(torch.cat([y, skip], dim=1)), size=size, mode="bilinear", align_corners=False)
        if not self.training:
            return seg
        return seg, F.interpolate(edge_logits, size=size, mode="bilinear", align_corners=False)


class _PaddedGatedSCNN(PadToMultiple):
    """``PadToMultiple`` that carries ``default_loss``: the Trainer reads it from the outer module."""

    default_loss = "gated_scnn_loss"


@MODELS.register("gated_scnn")
def gated_scnn(
    num_classes: int,
    encoder: str = "resnet50",
    encoder_weights: str | None = None,
    in_channels: int = 3,
    output_stride: int = 8,
    aspp_channels: int = 256,
    shape_channels: tuple[int, int, int] | list[int] = (32, 16, 8),
    weights: str | None = None,
) -> nn.Module:
    """Gated-SCNN (Takikawa et al. 2019): regular + gated shape stream, trained with ``gated_scnn_loss``.

    Args:
        num_classes: output channels (classes, background included).
        encoder: smp/timm encoder name for the regular stream ("resnet50"; the paper uses WideResNet38).
        encoder_weights: None (random init) or "imagenet".
        in_channels: input image channels.
        output_stride: regular-stream output stride (8 as in the paper; 16 or 32 are cheaper).
        aspp_channels: ASPP/decoder width.
        shape_channels: the three shape-stream widths.
        weights: path to a local checkpoint loaded after building.

    Returns:
        A module (``default_loss = "gated_scnn_loss"``, so the Trainer picks the dual-task loss). Train
        mode: ``(seg_logits (N, num_classes, H, W), edge_logits (N, 1, H, W))``; eval mode: seg logits.
        Any H, W (padded to a multiple of 32 internally, outputs cropped back).
    """
    if len(shape_channels) != 3:
        raise ValueError(f"gated_scnn: shape_channels needs 3 widths, got {list(shape_channels)}")
    widths = (int(shape_channels[0]), int(shape_channels[1]), int(shape_channels[2]))
    net = GatedSCNN(num_classes, encoder, encoder_weights, in_channels, output_stride, aspp_channels, widths)
    model = _PaddedGatedSCNN(net, 32)
    return load_weights(model, weights, num_classes) if weights is not None else model
