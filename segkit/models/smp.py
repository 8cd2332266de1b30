"""segmentation_models_pytorch architectures by name (U-Net, ...), with any input size."""

from __future__ import annotations

from typing import Any

import segmentation_models_pytorch as smp
from torch import nn

from segkit.models import MODELS
from segkit.models._utils import PadToMultiple

__all__ = ["unet"]


def _build_smp(
    arch: type[nn.Module],
    num_classes: int,
    encoder: str,
    encoder_weights: str | None,
    in_channels: int,
    aux_params: dict[str, Any] | None,
    **kwargs: Any,
) -> nn.Module:
    model = arch(
        encoder_name=encoder,
        encoder_weights=encoder_weights,
        in_channels=in_channels,
        classes=num_classes,
        aux_params=aux_params,
        **kwargs,
    )
    return PadToMultiple(model, multiple=32)


@MODELS.register("unet")
def unet(
    num_classes: int,
    encoder: str = "resnet34",
    encoder_weights: str | None = None,
    in_channels: int = 3,
    encoder_depth: int = 5,
    decoder_channels: tuple[int, ...] | list[int] = (256, 128, 64, 32, 16),
    aux_params: dict[str, Any] | None = None,
) -> nn.Module:
    """U-Net (Ronneberger et al. 2015) from segmentation_models_pytorch, on any smp/timm encoder.

    Args:
        num_classes: output channels (classes, background included).
        encoder: smp/timm encoder name ("resnet18", "resnet34", "efficientnet-b0", ...).
        encoder_weights: None (random init) or "imagenet" (downloaded by smp when online).
        in_channels: input image channels.
        encoder_depth: encoder stages used (3-5).
        decoder_channels: decoder widths, one per stage.
        aux_params: smp classification head options, passed through.

    Returns:
        A module mapping ``(N, in_channels, H, W)`` to logits ``(N, num_classes, H, W)``; any H, W
        (inputs are padded to a multiple of 32 internally and outputs cropped back).
    """
    return _build_smp(
        smp.Unet,
        num_classes,
        encoder,
        encoder_weights,
        in_channels,
        aux_params,
        encoder_depth=encoder_depth,
        decoder_channels=tuple(decoder_channels),
    )
