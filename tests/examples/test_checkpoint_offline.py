"""``Predictor.from_checkpoint`` rebuilds a model whose config names pretrained weights without downloading."""

import socket

import numpy as np
import pytest
import torch

from segkit import Predictor
from segkit.checkpoint import save_checkpoint
from segkit.export import model_from_checkpoint
from segkit.models import build_model


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No network and empty weight caches: any download attempt raises."""

    def refuse(*args, **kwargs):  # noqa: ANN002, ANN003
        raise OSError("network disabled by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_semantic_checkpoint_with_imagenet_encoder_loads_offline(tmp_path, offline):
    torch.manual_seed(0)
    cfg = {"name": "unet", "encoder": "resnet18", "decoder_channels": [16, 16, 8, 8, 8], "num_classes": 3}
    src = build_model(**cfg).eval()
    path = save_checkpoint(
        {"model": src.state_dict(), "config": {"model": {**cfg, "encoder_weights": "imagenet"}}}, tmp_path / "u.pt"
    )
    predictor = Predictor.from_checkpoint(path, device="cpu")
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(predictor.predict_logits(x), src(x))
    # segkit export shares the same implementation.
    with torch.no_grad():
        torch.testing.assert_close(model_from_checkpoint(path).eval()(x), src(x))


def test_detector_with_pretrained_backbone_loads_offline_with_frozen_norms(tmp_path, monkeypatch):
    import torchvision
    import torchvision.models._api as api

    torch.manual_seed(0)
    fake = torchvision.models.mobilenet_v3_large(weights=None).state_dict()
    monkeypatch.setattr(api, "load_state_dict_from_url", lambda *a, **k: fake)
    cfg = {
        "name": "mask_rcnn",
        "backbone": "mobilenet_v3_large",
        "weights_backbone": "imagenet",  # torchvision freezes its BatchNorm: another state-dict layout
        "min_size": 64,
        "max_size": 64,
        "box_detections_per_img": 5,
        "num_classes": 3,
    }
    src = build_model(**cfg).eval()
    # As the Trainer saves it: the config inside, the dataset's class names beside it.
    state = {"model": src.state_dict(), "config": {"model": cfg}, "class_names": ["background", "a", "b"]}
    path = save_checkpoint(state, tmp_path / "m.pt")

    def refuse(*a, **k):  # noqa: ANN002, ANN003
        raise AssertionError("from_checkpoint tried to download weights")

    monkeypatch.setattr(api, "load_state_dict_from_url", refuse)
    predictor = Predictor.from_checkpoint(path, device="cpu", min_confidence=0.0)
    assert predictor.class_names == ["background", "a", "b"]
    image = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    got = predictor.predict(image)
    with torch.no_grad():
        ref = src([predictor.preprocess(image)[0]])[0]
    assert len(got) == len(ref["scores"]) > 0
    np.testing.assert_allclose(got.scores, ref["scores"].numpy(), rtol=1e-4)
    np.testing.assert_allclose(got.boxes, ref["boxes"].numpy(), rtol=1e-4, atol=1e-3)
