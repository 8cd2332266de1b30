"""FastFCN (Wu et al. 2019): Joint Pyramid Upsampling on a plain output-stride-32 encoder, with an ASPP/PSP/FCN head."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from segkit.models._utils import PadToMultiple, download_guard, hf_cache_dir
from segkit.models.registry import MODELS
from segkit.models.weights import load_weights

__all__ = ["JPU", "FastFCN", "fastfcn"]


def _conv_bn_relu(cin: int, cout: int, kernel: int = 3) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class _SeparableConv(nn.Sequential):
    """Depthwise dilated 3x3 + BN, then pointwise 1x1 + BN + ReLU (the JPU's dilation branches)."""

    def __init__(self, cin: int, cout: int, dilation: int) -> None:
        super().__init__(
            nn.Conv2d(cin, cin, 3, padding=dilation, dilation=dilation, groups=cin, bias=False),
            nn.BatchNorm2d(cin),
            nn.Conv2d(cin, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )


class JPU(nn.Module):
    """Joint Pyramid Upsampling: stride 8/16/32 features in, one stride-8 map out.

    Each input is projected to ``width`` channels (3x3 conv, BN, ReLU), the stride 16 and 32 maps are
    upsampled (bilinear) to the stride-8 size, the three are concatenated, passed through four parallel
    separable convolutions with dilation 1, 2, 4 and 8, concatenated again and fused by a 1x1 conv.

    Args:
        in_channels: channels of the stride 8, 16 and 32 feature maps.
        width: projection width (512 in the paper).
        out_channels: channels after the fusing 1x1 conv.
        dilations: dilation of each separable branch.

    Shape:
        inputs ``(N, C8, H/8, W/8)``, ``(N, C16, H/16, W/16)``, ``(N, C32, H/32, W/32)``;
        output ``(N, out_channels, H/8, W/8)``.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        width: int = 512,
        out_channels: int = 512,
        dilations: Sequence[int] = (1, 2, 4, 8),
    ) -> None:
        super().__init__()
        if len(in_channels) != 3:
            raise ValueError(f"JPU: expected 3 input widths (stride 8, 16, 32), got {list(in_channels)}")
        self.project = nn.ModuleList(_conv_bn_relu(c, width) for c in in_channels)
        self.dilated = nn.ModuleList(_SeparableConv(3 * width, width, d) for d in dilations)
        self.fuse = _conv_bn_relu(len(dilations) * width, out_channels, kernel=1)

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        size = feats[0].shape[-2:]
        maps = [proj(f) for proj, f in zip(self.project, feats)]
        maps = [maps[0]] + [F.interpolate(m, size=size, mode="bilinear", align_corners=False) for m in maps[1:]]
        x = torch.cat(maps, dim=1)
        return self.fuse(torch.cat([branch(x) for branch in self.dilated], dim=1))


class _PSPHead(nn.Module):
    """Pyramid pooling (bins 1, 2, 3, 6) + 3x3 conv + classifier, as in PSPNet."""

    def __init__(self, cin: int, num_classes: int, bins: Sequence[int] = (1, 2, 3, 6)) -> None:
        super().__init__()
        inner = cin // len(bins)
        self.stages = nn.ModuleList(
            nn.Sequential(
                nn.AdaptiveAvgPool2d(b), nn.Conv2d(cin, inner, 1, bias=False), nn.BatchNorm2d(inner), nn.ReLU()
            )
            for b in bins
        )
        self.bottleneck = _conv_bn_relu(cin + inner * len(bins), cin // 2)
        self.classifier = nn.Sequential(nn.Dropout(0.1), nn.Conv2d(cin // 2, num_classes, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        pooled = [F.interpolate(s(x), size=size, mode="bilinear", align_corners=False) for s in self.stages]
        return self.classifier(self.bottleneck(torch.cat([x, *pooled], dim=1)))


class FastFCN(nn.Module):
    """Encoder at output stride 32 + JPU (stride 8) + segmentation head, output upsampled to the input size.

    Args:
        num_classes: output channels.
        encoder: smp/timm encoder name with 5 stages (the stride 8, 16 and 32 stages are used).
        encoder_weights: None or "imagenet".
        in_channels: input image channels.
        jpu_channels: JPU projection and output width (512 in the paper).
        head: "aspp" (DeepLabV3 head, the paper's best variant), "psp" or "fcn".

    Shape:
        input ``(N, in_channels, H, W)`` with H, W multiples of 32 (``fastfcn`` pads for you);
        output ``(N, num_classes, H, W)``.
    """

    def __init__(
        self,
        num_classes: int,
        encoder: str = "resnet50",
        encoder_weights: str | None = None,
        in_channels: int = 3,
        jpu_channels: int = 512,
        head: str = "aspp",
    ) -> None:
        super().__init__()
        with download_guard(
            f"encoder_weights={encoder_weights!r} for encoder {encoder!r}", "the Hugging Face Hub", hf_cache_dir()
        ):
            # Imported here: smp and torchvision cost seconds at `import segkit`.
            from segmentation_models_pytorch.encoders import get_encoder

            self.encoder = get_encoder(encoder, in_channels=in_channels, depth=5, weights=encoder_weights)
        from torchvision.models.segmentation.deeplabv3 import DeepLabHead
        from torchvision.models.segmentation.fcn import FCNHead

        chans = list(self.encoder.out_channels)[-3:]
        self.jpu = JPU(chans, width=jpu_channels, out_channels=jpu_channels)
        if head == "aspp":
            self.head: nn.Module = DeepLabHead(jpu_channels, num_classes)
        elif head == "psp":
            self.head = _PSPHead(jpu_channels, num_classes)
        elif head == "fcn":
            self.head = FCNHead(jpu_channels, num_classes)
        else:
            raise ValueError(f"fastfcn: head must be 'aspp', 'psp' or 'fcn', got {head!r}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.encoder(x)[-3:]
        out = self.head(self.jpu(feats))
        return F.interpolate(out, size=x.shape[-2:], mode="bilinear", align_corners=False)


@MODELS.register("fastfcn")
def fastfcn(
    num_classes: int,
    encoder: str = "resnet50",
    encoder_weights: str | None = None,
    in_channels: int = 3,
    jpu_channels: int = 512,
    head: str = "aspp",
    weights: str | None = None,
) -> nn.Module:
    """FastFCN (Wu et al. 2019): JPU on an undilated encoder, ASPP/PSP/FCN head.

    Args:
        num_classes: output channels (classes, background included).
        encoder: smp/timm encoder name ("resnet50" as in the paper; any 5-stage encoder).
        encoder_weights: None (random init) or "imagenet".
        in_channels: input image channels.
        jpu_channels: JPU width (512 in the paper; smaller is cheaper).
        head: "aspp" (default, the paper's DeepLabV3+JPU), "psp" or "fcn".
        weights: path to a local checkpoint loaded after building.

    Returns:
        A module mapping ``(N, in_channels, H, W)`` to ``(N, num_classes, H, W)`` logits for any H, W
        (padded to a multiple of 32 internally, output cropped back).
    """
    model = PadToMultiple(FastFCN(num_classes, encoder, encoder_weights, in_channels, jpu_channels, head), 32)
    return load_weights(model, weights, num_classes) if weights is not None else model
