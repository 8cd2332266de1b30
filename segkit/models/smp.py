"""segmentation_models_pytorch architectures by name (U-Net, FPN, DeepLabV3, SegFormer, ...), with any input size.

smp (and the timm and torchvision it imports, several seconds) is imported when a model is built, not when
the names are registered: ``import segkit`` and ``segkit list models`` stay cheap.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

from torch import nn

from segkit.models._utils import PadToMultiple, download_guard, hf_cache_dir
from segkit.models.registry import MODELS
from segkit.models.weights import is_weights_file, load_encoder_weights, load_weights

__all__ = ["SMP_ARCHITECTURES", "aux_head", "build_smp", "smp_class", "unet"]

# Registered name -> (smp class name, one-line description). Every architecture takes the same common
# arguments (see ``build_smp``); architecture-specific options are passed through to smp unchanged. The
# classes are named, not imported, so registering costs nothing; a test checks each name against smp's own
# ``MODEL_ARCHITECTURES_MAPPING``.
SMP_ARCHITECTURES: dict[str, tuple[str, str]] = {
    "unetplusplus": ("UnetPlusPlus", "U-Net++ (Zhou et al. 2018): nested dense skip connections"),
    "fpn": ("FPN", "Feature Pyramid Network (Kirillov et al. 2019, panoptic FPN head)"),
    "pspnet": ("PSPNet", "PSPNet (Zhao et al. 2017): pyramid pooling module"),
    "linknet": ("Linknet", "LinkNet (Chaurasia & Culurciello 2017): light additive skip decoder"),
    "manet": ("MAnet", "MA-Net (Fan et al. 2020): multi-scale attention decoder"),
    "pan": ("PAN", "Pyramid Attention Network (Li et al. 2018)"),
    "upernet": ("UPerNet", "UPerNet (Xiao et al. 2018): PPM + FPN fusion"),
    "segformer": ("Segformer", "SegFormer all-MLP decoder (Xie et al. 2021) on any encoder"),
    "deeplabv3": ("DeepLabV3", "DeepLabV3 (Chen et al. 2017): ASPP on a dilated (output stride 8) encoder"),
    "deeplabv3plus": ("DeepLabV3Plus", "DeepLabV3+ (Chen et al. 2018): ASPP + low-level decoder, output stride 16"),
}


def _smp() -> ModuleType:
    import segmentation_models_pytorch

    return segmentation_models_pytorch


def smp_class(class_name: str) -> type[nn.Module]:
    """The smp model class of that name (``"Unet"``, ``"FPN"``, ...), importing smp on first use.

    Args:
        class_name: an attribute of ``segmentation_models_pytorch``.

    Returns:
        The class.
    """
    arch: type[nn.Module] = getattr(_smp(), class_name)
    return arch


def build_smp(
    arch: type[nn.Module],
    num_classes: int,
    encoder: str = "resnet34",
    encoder_weights: str | None = None,
    in_channels: int = 3,
    aux_params: dict[str, Any] | None = None,
    weights: str | None = None,
    weights_key: str | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build one smp architecture wrapped in ``PadToMultiple(32)``.

    Args:
        arch: the smp class (``smp.Unet``, ``smp.FPN``, ...).
        num_classes: output channels (classes, background included).
        encoder: smp/timm encoder name ("resnet18", "resnet34", "efficientnet-b0", "tu-<timm name>", ...).
        encoder_weights: None (random init), "imagenet" (downloaded by smp from the Hugging Face Hub
            when online; offline and not cached: one ``WeightsUnavailableError``), or the path of a local
            encoder file (a torchvision / timm backbone state dict such as ``resnet34-b627a593.pth``, an smp
            state dict or a segkit checkpoint; see docs/models.md and ``load_encoder_weights``).
        in_channels: input image channels.
        aux_params: smp classification head options, passed through (the model then returns
            ``(mask_logits, class_logits)``).
        weights: path to a local checkpoint (segkit checkpoint or plain state dict) loaded after building;
            with another class count the head is new (see ``load_weights``).
        weights_key: ``"model"`` or ``"ema"``: which weights of a segkit checkpoint; None: EMA when present.
        **kwargs: architecture-specific smp options (``decoder_channels``, ``encoder_depth``, ...).

    Returns:
        A module mapping ``(N, in_channels, H, W)`` to logits ``(N, num_classes, H, W)`` for any H, W:
        inputs are padded to a multiple of 32 internally (PAN: 8 x its encoder output stride, 128 by
        default) and outputs cropped back.
    """
    name = getattr(arch, "__name__", str(arch))
    encoder_file = encoder_weights if is_weights_file(encoder_weights) else None
    if encoder_file is not None:
        encoder_weights = None  # built with random weights, then loaded from the file
    with download_guard(
        f"encoder_weights={encoder_weights!r} for {name} encoder {encoder!r}",
        "the Hugging Face Hub (smp-hub / timm)",
        hf_cache_dir(),
    ):
        model = arch(
            encoder_name=encoder,
            encoder_weights=encoder_weights,
            in_channels=in_channels,
            classes=num_classes,
            aux_params=aux_params,
            **kwargs,
        )
    if encoder_file is not None:
        load_encoder_weights(model.get_submodule("encoder"), encoder_file, encoder)
    # PAN's feature pyramid attention halves the deepest (stride 16 or 32) map three more times.
    multiple = 8 * int(kwargs.get("encoder_output_stride", 16)) if arch is _smp().PAN else 32
    wrapped = PadToMultiple(model, multiple=multiple)
    return load_weights(wrapped, weights, num_classes, weights_key) if weights is not None else wrapped


@MODELS.register("unet")
def unet(
    num_classes: int,
    encoder: str = "resnet34",
    encoder_weights: str | None = None,
    in_channels: int = 3,
    encoder_depth: int = 5,
    decoder_channels: tuple[int, ...] | list[int] = (256, 128, 64, 32, 16),
    aux_params: dict[str, Any] | None = None,
    weights: str | None = None,
    weights_key: str | None = None,
) -> nn.Module:
    """U-Net (Ronneberger et al. 2015) from segmentation_models_pytorch, on any smp/timm encoder.

    Args:
        num_classes: output channels (classes, background included).
        encoder: smp/timm encoder name ("resnet18", "resnet34", "efficientnet-b0", ...).
        encoder_weights: None (random init), "imagenet" (downloaded by smp when online) or a local file path.
        in_channels: input image channels.
        encoder_depth: encoder stages used (3-5).
        decoder_channels: decoder widths, one per stage.
        aux_params: smp classification head options, passed through.
        weights: path to a local checkpoint loaded after building (a new head for another class count).
        weights_key: ``"model"`` or ``"ema"``: which weights of a segkit checkpoint; None: EMA when present.

    Returns:
        A module mapping ``(N, in_channels, H, W)`` to logits ``(N, num_classes, H, W)``; any H, W
        (inputs are padded to a multiple of 32 internally and outputs cropped back).
    """
    return build_smp(
        smp_class("Unet"),
        num_classes,
        encoder,
        encoder_weights,
        in_channels,
        aux_params,
        weights,
        weights_key,
        encoder_depth=encoder_depth,
        decoder_channels=tuple(decoder_channels),
    )


def aux_head(model: nn.Module) -> nn.Module | None:
    """The classification head of an smp model built with ``aux_params``, or None.

    Args:
        model: any module; the smp model is looked for inside it (``PadToMultiple``, DDP or other wrappers).

    Returns:
        smp's ``ClassificationHead`` (pooling, dropout, ``Linear(features, classes)``, activation) of the first
        smp ``SegmentationModel`` found, when it has one; None for every other model.
    """
    smp = sys.modules.get("segmentation_models_pytorch")
    if smp is None:  # no smp model can exist before smp is imported
        return None
    for module in model.modules():
        if isinstance(module, smp.base.SegmentationModel):
            head = getattr(module, "classification_head", None)
            return head if isinstance(head, nn.Module) else None
    return None


def _make_builder(name: str, class_name: str, summary: str) -> Callable[..., nn.Module]:
    def builder(
        num_classes: int,
        encoder: str = "resnet34",
        encoder_weights: str | None = None,
        in_channels: int = 3,
        aux_params: dict[str, Any] | None = None,
        weights: str | None = None,
        weights_key: str | None = None,
        **kwargs: Any,
    ) -> nn.Module:
        for key, value in kwargs.items():
            if isinstance(value, list):  # YAML gives lists where smp expects tuples
                kwargs[key] = tuple(value)
        return build_smp(
            smp_class(class_name),
            num_classes,
            encoder,
            encoder_weights,
            in_channels,
            aux_params,
            weights,
            weights_key,
            **kwargs,
        )

    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = f"""{summary}, from segmentation_models_pytorch (``smp.{class_name}``).

    Args:
        num_classes: output channels (classes, background included).
        encoder: smp/timm encoder name ("resnet34" default).
        encoder_weights: None (random init, the default), "imagenet" or a local encoder file path.
        in_channels: input image channels.
        aux_params: smp classification head options, passed through.
        weights: path to a local checkpoint loaded after building (a new head for another class count).
        weights_key: "model" or "ema": which weights of a segkit checkpoint; None: EMA when present.
        **kwargs: further ``smp.{class_name}`` options, passed through unchanged.

    Returns:
        A module mapping ``(N, in_channels, H, W)`` to ``(N, num_classes, H, W)`` logits for any H, W
        (padded to a multiple of 32 internally, output cropped back).
    """
    return builder


for _name, (_class_name, _summary) in SMP_ARCHITECTURES.items():
    MODELS.register(_name)(_make_builder(_name, _class_name, _summary))
