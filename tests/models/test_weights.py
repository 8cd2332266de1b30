"""Pretrained weights offline give one clear error; local checkpoints load, or report what does not fit."""

from __future__ import annotations

import urllib.error

import pytest
import segmentation_models_pytorch as smp
import torch

from segkit.checkpoint import CheckpointError, save_checkpoint
from segkit.models import build_model
from segkit.models._utils import WeightsUnavailableError


def _no_network(*args, **kwargs):  # noqa: ANN002, ANN003
    raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")


def test_smp_imagenet_offline_is_one_clear_error(monkeypatch) -> None:
    import segmentation_models_pytorch.encoders as encoders

    monkeypatch.setattr(encoders, "hf_hub_download", _no_network)
    with pytest.raises(WeightsUnavailableError) as info:
        build_model("unet", num_classes=2, encoder="resnet18", encoder_weights="imagenet")
    msg = str(info.value)
    assert "'imagenet'" in msg and "resnet18" in msg and "cache" in msg and "weights=" in msg
    assert info.value.__cause__ is None and info.value.__suppress_context__  # no urllib traceback chained


def test_torchvision_weights_offline_is_one_clear_error(monkeypatch) -> None:
    import torchvision.models._api as api

    monkeypatch.setattr(api, "load_state_dict_from_url", _no_network)
    with pytest.raises(WeightsUnavailableError, match="download.pytorch.org"):
        build_model("segnet", num_classes=2, base_width=64, encoder_weights="imagenet")


def test_local_checkpoint_and_plain_state_dict_load(tmp_path) -> None:
    kw = {"num_classes": 3, "encoder": "resnet18", "decoder_channels": (8, 8, 8, 8, 8)}
    src = build_model("unet", **kw)
    save_checkpoint({"model": src.state_dict()}, tmp_path / "run.pt")
    torch.save(src.model.state_dict(), tmp_path / "bare.pth")  # as saved from smp directly: no "model." prefix
    for name in ("run.pt", "bare.pth"):
        loaded = build_model("unet", weights=str(tmp_path / name), **kw)
        for (k, a), b in zip(src.state_dict().items(), loaded.state_dict().values()):
            assert torch.equal(a, b), k


def test_checkpoint_of_other_class_count_gets_a_new_head(tmp_path, capsys) -> None:
    src = smp.FPN(encoder_name="resnet18", encoder_weights=None, classes=5, decoder_segmentation_channels=32)
    torch.save(src.state_dict(), tmp_path / "fpn5.pth")
    kw = {"num_classes": 3, "encoder": "resnet18", "decoder_segmentation_channels": 32}
    torch.manual_seed(7)
    fresh = build_model("fpn", **kw)
    torch.manual_seed(7)
    model = build_model("fpn", weights=str(tmp_path / "fpn5.pth"), **kw)
    heads = {"segmentation_head.0.weight", "segmentation_head.0.bias"}
    for key, value in model.model.state_dict().items():
        # Every tensor but the 3-class head comes from the file; the head keeps its fresh initialisation.
        expected = fresh.model.state_dict()[key] if key in heads else src.state_dict()[key]
        assert torch.equal(value, expected), key
    line = capsys.readouterr().err
    assert "new head for 3 classes (the file has 5)" in line and "segmentation_head.0.weight" in line


def test_checkpoint_of_another_encoder_is_still_an_error(tmp_path) -> None:
    src = smp.FPN(encoder_name="resnet34", encoder_weights=None, classes=5, decoder_segmentation_channels=32)
    torch.save(src.state_dict(), tmp_path / "fpn34.pth")
    with pytest.raises(CheckpointError, match=r"another architecture or encoder.*unexpected keys.*encoder\.layer1\.2"):
        build_model(
            "fpn",
            num_classes=3,
            encoder="resnet18",
            decoder_segmentation_channels=32,
            weights=str(tmp_path / "fpn34.pth"),
        )
