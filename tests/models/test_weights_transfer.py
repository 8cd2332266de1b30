"""Fine-tuning starts: EMA weights served from checkpoints, encoder weights from torchvision / smp / segkit files."""

from __future__ import annotations

import pytest
import torch
import torchvision

from segkit.checkpoint import CheckpointError, model_weights, save_checkpoint
from segkit.models import build_model

UNET = {"encoder": "resnet18", "decoder_channels": (8, 8, 8, 8, 8)}


def _perturbed(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v + 1.0 if v.dtype.is_floating_point else v for k, v in state.items()}


def test_checkpoint_with_ema_serves_the_ema_weights_unless_asked(tmp_path) -> None:
    src = build_model("unet", num_classes=3, **UNET)
    ema = _perturbed(src.state_dict())
    save_checkpoint({"model": src.state_dict(), "ema": ema}, tmp_path / "best.pt")
    served = build_model("unet", num_classes=3, weights=str(tmp_path / "best.pt"), **UNET)
    raw = build_model("unet", num_classes=3, weights=str(tmp_path / "best.pt"), weights_key="model", **UNET)
    for key in ("model.encoder.conv1.weight", "model.segmentation_head.0.bias"):
        assert torch.equal(served.state_dict()[key], ema[key])
        assert torch.equal(raw.state_dict()[key], src.state_dict()[key])
    with pytest.raises(CheckpointError, match=r"holds no 'ema' weights \(it has: model\)"):
        model_weights({"model": src.state_dict(), "ema": None}, "ema", source="run/last.pt")


def test_segkit_checkpoint_of_other_classes_loads_ema_body_and_new_head(tmp_path, capsys) -> None:
    src = build_model("unet", num_classes=11, **UNET)
    ema = _perturbed(src.state_dict())
    save_checkpoint({"model": src.state_dict(), "ema": ema}, tmp_path / "camvid.pt")
    model = build_model("unet", num_classes=4, weights=str(tmp_path / "camvid.pt"), **UNET)
    assert torch.equal(
        model.state_dict()["model.decoder.blocks.0.conv1.0.weight"], ema["model.decoder.blocks.0.conv1.0.weight"]
    )
    assert model.state_dict()["model.segmentation_head.0.weight"].shape[0] == 4
    assert "new head for 4 classes (the file has 11)" in capsys.readouterr().err


def test_encoder_weights_from_a_torchvision_file(tmp_path) -> None:
    net = torchvision.models.resnet18(weights=None)  # the layout of torchvision's resnet18-f37072fd.pth
    torch.save(net.state_dict(), tmp_path / "resnet18-f37072fd.pth")
    model = build_model("unet", num_classes=2, encoder_weights=str(tmp_path / "resnet18-f37072fd.pth"), **UNET)
    encoder = model.model.encoder.state_dict()
    reference = {k: v for k, v in net.state_dict().items() if not k.startswith("fc.")}
    assert encoder.keys() == reference.keys()
    for key, value in reference.items():
        assert torch.equal(encoder[key], value), key


@pytest.mark.parametrize("in_channels", [1, 4])
def test_encoder_weights_file_adapts_the_first_conv_to_other_channel_counts(tmp_path, in_channels) -> None:
    net = torchvision.models.resnet18(weights=None)
    torch.save(net.state_dict(), tmp_path / "r18.pth")
    model = build_model(
        "unet", num_classes=2, in_channels=in_channels, encoder_weights=str(tmp_path / "r18.pth"), **UNET
    )
    rgb = net.conv1.weight.detach()
    # smp's rule for pretrained encoders on other inputs: summed for 1 channel; else RGB repeated, scaled 3/C.
    expected = rgb.sum(1, keepdim=True) if in_channels == 1 else rgb[:, [0, 1, 2, 0]] * 0.75
    assert torch.allclose(model.model.encoder.conv1.weight, expected)
    assert torch.equal(model.model.encoder.layer4[1].conv2.weight, net.layer4[1].conv2.weight)


def test_encoder_weights_from_a_segkit_checkpoint(tmp_path) -> None:
    src = build_model("unet", num_classes=11, **UNET)
    save_checkpoint({"model": src.state_dict()}, tmp_path / "run.pt")
    model = build_model("deeplabv3plus", num_classes=2, encoder="resnet18", encoder_weights=str(tmp_path / "run.pt"))
    for key, value in src.model.encoder.state_dict().items():
        assert torch.equal(model.model.encoder.state_dict()[key], value), key


def test_encoder_weights_of_another_network_is_an_error(tmp_path) -> None:
    torch.save(torchvision.models.resnet34(weights=None).state_dict(), tmp_path / "resnet34.pth")
    with pytest.raises(CheckpointError, match=r"does not fit encoder 'resnet18'.*unexpected keys.*layer1\.2"):
        build_model("unet", num_classes=2, encoder_weights=str(tmp_path / "resnet34.pth"), **UNET)
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        build_model("unet", num_classes=2, encoder_weights=str(tmp_path / "missing.pth"), **UNET)


def test_torchvision_resnet34_file_loads_and_a_smaller_network_names_the_missing_keys(tmp_path) -> None:
    net = torchvision.models.resnet34(weights=None)
    torch.save(net.state_dict(), tmp_path / "resnet34-b627a593.pth")
    kw = {"encoder": "resnet34", "decoder_channels": (8, 8, 8, 8, 8)}
    model = build_model("unet", num_classes=2, encoder_weights=str(tmp_path / "resnet34-b627a593.pth"), **kw)
    for key, value in net.state_dict().items():
        if not key.startswith("fc."):
            assert torch.equal(model.model.encoder.state_dict()[key], value), key
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), tmp_path / "resnet18.pth")
    with pytest.raises(CheckpointError, match=r"does not fit encoder 'resnet34'.*keys missing.*layer1\.2"):
        build_model("unet", num_classes=2, encoder_weights=str(tmp_path / "resnet18.pth"), **kw)
