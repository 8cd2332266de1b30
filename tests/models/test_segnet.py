"""SegNet: unpooling equals max_unpool2d at the pooling indices; VGG16-BN weights map onto the encoder."""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torchvision

from segkit.models import build_model
from segkit.models.segnet import _unpool


def test_scatter_unpool_equals_max_unpool2d() -> None:
    x = torch.randn(2, 3, 10, 14)
    pooled, idx = F.max_pool2d(x, 2, 2, return_indices=True)
    torch.testing.assert_close(_unpool(pooled, idx, x.shape[-2:]), F.max_unpool2d(pooled, idx, 2, 2))


def test_decoder_reuses_encoder_pooling_indices(monkeypatch) -> None:
    import segkit.models.segnet as segnet_module

    model = build_model("segnet", num_classes=2, base_width=4).eval()
    pooled, unpooled = [], []
    model.model.pool.register_forward_hook(lambda m, i, o: pooled.append(o[1]))
    monkeypatch.setattr(segnet_module, "_unpool", lambda x, idx, size: unpooled.append(idx) or _unpool(x, idx, size))
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 2, 64, 64)
    assert [tuple(i.shape[-2:]) for i in pooled] == [(32, 32), (16, 16), (8, 8), (4, 4), (2, 2)]
    assert [id(i) for i in unpooled] == [id(i) for i in reversed(pooled)]  # the same tensors, deepest first


def test_vgg16_bn_weights_load_into_the_encoder() -> None:
    model = build_model("segnet", num_classes=2)
    vgg = torchvision.models.vgg16_bn()
    model.model.load_vgg16_bn(vgg.state_dict())
    convs = [m for m in model.model.encoder.modules() if isinstance(m, torch.nn.Conv2d)]
    ref = [m for m in vgg.features if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == len(ref) == 13
    assert all(torch.equal(a.weight, b.weight) for a, b in zip(convs, ref))
