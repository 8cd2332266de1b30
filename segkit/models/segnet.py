"""SegNet (Badrinarayanan et al. 2017): VGG16-BN encoder, decoder that unpools with the encoder's max-pooling indices."""

from __future__ import annotations

import torch
from torch import nn

from segkit.models._utils import PadToMultiple, download_guard, torch_cache_dir
from segkit.models.registry import MODELS
from segkit.models.weights import load_weights

__all__ = ["SegNet", "segnet"]

# Convolutions per VGG16 stage; the decoder mirrors them.
_VGG16_STAGES = (2, 2, 3, 3, 3)


def _conv_bn_relu(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


def _unpool(x: torch.Tensor, indices: torch.Tensor, size: torch.Size) -> torch.Tensor:
    """``max_unpool2d`` as a scatter into a zero map of ``size``: same result, and it exports to ONNX
    (``nn.MaxUnpool2d`` does not trace with the TorchScript-based exporter)."""
    n, c = x.shape[:2]
    out = x.new_zeros(n, c, size[0] * size[1])
    out = out.scatter(2, indices.flatten(2), x.flatten(2))
    return out.view(n, c, size[0], size[1])


class SegNet(nn.Module):
    """VGG16-BN encoder (5 stages, each ending in a 2x2 max pool that records its argmax indices) and a
    mirrored decoder whose stages start with ``MaxUnpool2d`` at those indices.

    The encoder's layer order matches torchvision's ``vgg16_bn().features`` so its ImageNet weights load.

    Args:
        num_classes: output channels.
        in_channels: input image channels.
        base_width: width of the first stage (64 in VGG16; stages use 1, 2, 4, 8, 8 times it).
            Smaller values give a cheaper model with the same structure.

    Shape:
        input ``(N, in_channels, H, W)`` with H, W multiples of 32 (``segnet`` pads for you);
        output ``(N, num_classes, H, W)``.
    """

    def __init__(self, num_classes: int, in_channels: int = 3, base_width: int = 64) -> None:
        super().__init__()
        widths = [base_width * m for m in (1, 2, 4, 8, 8)]
        self.encoder = nn.ModuleList()
        cin = in_channels
        for n, w in zip(_VGG16_STAGES, widths):
            layers: list[nn.Module] = []
            for _ in range(n):
                layers += _conv_bn_relu(cin, w)
                cin = w
            self.encoder.append(nn.Sequential(*layers))
        self.pool = nn.MaxPool2d(2, 2, return_indices=True)
        self.decoder = nn.ModuleList()
        # Decoder stage i mirrors encoder stage i (deepest first): n convs, the last one narrowing to
        # the width of the stage above; the final stage ends in a plain classifier conv.
        outs = [widths[i - 1] if i > 0 else None for i in range(len(widths))]
        for i in reversed(range(len(widths))):
            w, n = widths[i], _VGG16_STAGES[i]
            layers = []
            for j in range(n):
                last = j == n - 1
                if last and outs[i] is None:
                    layers.append(nn.Conv2d(w, num_classes, 3, padding=1))
                else:
                    layers += _conv_bn_relu(w, outs[i] if last else w)  # type: ignore[arg-type]
            self.decoder.append(nn.Sequential(*layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        indices = []
        for stage in self.encoder:
            x = stage(x)
            size = x.shape[-2:]
            x, idx = self.pool(x)
            indices.append((idx, size))
        for stage, (idx, size) in zip(self.decoder, reversed(indices)):
            x = stage(_unpool(x, idx, size))
        return x

    def load_vgg16_bn(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Copy torchvision ``vgg16_bn`` ``features.*`` weights into the encoder (same layer order)."""
        src = [v for k, v in state_dict.items() if k.startswith("features.") and not k.endswith("num_batches_tracked")]
        dst = [v for k, v in self.encoder.state_dict().items() if not k.endswith("num_batches_tracked")]
        if len(src) != len(dst) or any(a.shape != b.shape for a, b in zip(src, dst)):
            raise ValueError("segnet: VGG16-BN weights need base_width=64 and in_channels=3")
        keys = [k for k in self.encoder.state_dict() if not k.endswith("num_batches_tracked")]
        self.encoder.load_state_dict(dict(zip(keys, src)), strict=False)


@MODELS.register("segnet")
def segnet(
    num_classes: int,
    in_channels: int = 3,
    encoder_weights: str | None = None,
    base_width: int = 64,
    weights: str | None = None,
) -> nn.Module:
    """SegNet (Badrinarayanan et al. 2017): VGG16-BN encoder, max-unpooling decoder.

    Args:
        num_classes: output channels (classes, background included).
        in_channels: input image channels.
        encoder_weights: None (random init) or "imagenet" (torchvision's VGG16-BN weights,
            downloaded once to the torch cache when online).
        base_width: first-stage width (64 = VGG16; smaller for a cheap model).
        weights: path to a local checkpoint loaded after building.

    Returns:
        A module mapping ``(N, in_channels, H, W)`` to ``(N, num_classes, H, W)`` logits for any H, W
        (padded to a multiple of 32 internally, output cropped back).
    """
    net = SegNet(num_classes, in_channels, base_width)
    if encoder_weights is not None:
        if encoder_weights != "imagenet":
            raise ValueError(f"segnet: encoder_weights must be None or 'imagenet', got {encoder_weights!r}")
        from torchvision.models import VGG16_BN_Weights

        enum = VGG16_BN_Weights.IMAGENET1K_V1
        with download_guard(
            f"encoder_weights='imagenet' (VGG16-BN, {enum.url})", "download.pytorch.org", torch_cache_dir()
        ):
            state = enum.get_state_dict(progress=False)
        net.load_vgg16_bn(state)
    model = PadToMultiple(net, 32)
    return load_weights(model, weights, num_classes) if weights is not None else model
