"""Every registered semantic model: forward and backward at two sizes, output shape, gradient at the first layer."""

from __future__ import annotations

import pytest
import segmentation_models_pytorch as smp
import torch
import torchvision

from segkit.models import MODELS, build_model

from ._small import SEMANTIC, SMALL


def test_every_issue_architecture_is_registered() -> None:
    expected = {"unet", "unetplusplus", "fpn", "pspnet", "linknet", "manet", "pan", "upernet", "segformer",
                "deeplabv3", "deeplabv3plus", "fastfcn", "segnet", "gated_scnn", "mask_rcnn"}  # fmt: skip
    assert expected <= set(MODELS.names())


@pytest.mark.parametrize("name", SEMANTIC)
def test_forward_backward_any_size(name: str) -> None:
    model = build_model(name, num_classes=3, **SMALL.get(name, {}))
    first = next(p for p in model.parameters() if p.dim() == 4)  # the first conv registered: the stem
    for h, w in [(64, 64), (45, 61)]:  # a multiple of 32, and an odd size (padded to 64 inside)
        model.zero_grad()
        x = torch.randn(2, 3, h, w)
        out = model(x)
        seg = out[0] if isinstance(out, (tuple, list)) else out
        assert seg.shape == (2, 3, h, w)
        loss = sum(o.float().pow(2).mean() for o in (out if isinstance(out, (tuple, list)) else [out]))
        loss.backward()
        assert first.grad is not None and first.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 70, 90)).shape == (1, 3, 70, 90)  # eval: the logits tensor only


def _count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_deeplabv3_resnet50_matches_smp_parameter_count() -> None:
    ours = build_model("deeplabv3", num_classes=21, encoder="resnet50")
    ref = smp.DeepLabV3(encoder_name="resnet50", encoder_weights=None, classes=21)
    assert _count(ours) == _count(ref)


def test_segnet_encoder_is_vgg16_bn_and_total_matches_paper() -> None:
    model = build_model("segnet", num_classes=21)
    # Encoder = torchvision's VGG16-BN conv layers exactly; total ~29.5M as in Badrinarayanan et al. (2017).
    assert _count(model.model.encoder) == _count(torchvision.models.vgg16_bn().features)
    assert 29.4e6 < _count(model) < 29.5e6
