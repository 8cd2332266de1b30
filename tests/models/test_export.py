"""ONNX export: onnxruntime reproduces ``Predictor``'s logits for every semantic model at the traced size and
(graphs that take any size) at others; ``segkit export`` from a checkpoint."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from segkit.checkpoint import save_checkpoint
from segkit.cli import main
from segkit.export import export_onnx
from segkit.inference import Predictor
from segkit.models import build_model

from ._small import SEMANTIC, SMALL

ort = pytest.importorskip("onnxruntime")  # test-only dependency (in the dev extra)


def _run(path, x: torch.Tensor) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["logits"], {"image": x.numpy()})[0]


# PSPNet (stride 8) and UPerNet (stride 32) pool into 1, 2, 3 and 6 bins; ONNX needs the bins to divide the map.
SIZE = {"pspnet": 96, "upernet": 192}


# Measured: these families export graphs that take any H and W; the pooling ones keep the traced size.
ANY_SIZE = {
    "unet", "unetplusplus", "fpn", "linknet", "manet", "pan", "segformer", "deeplabv3", "deeplabv3plus",
    "fastfcn", "segnet", "gated_scnn",
}  # fmt: skip


@pytest.mark.parametrize("name", SEMANTIC)
def test_onnx_matches_pytorch(name: str, tmp_path) -> None:
    model = build_model(name, num_classes=3, **SMALL.get(name, {})).eval()
    size = SIZE.get(name, 64)
    path = export_onnx(model, tmp_path / f"{name}.onnx", (size, size))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    graph_size = json.loads(session.get_modelmeta().custom_metadata_map["segkit.graph_size"])
    assert graph_size is None or name not in ANY_SIZE
    # The traced size, then (any-size graphs) odd sides that are not multiples of the model's stride; batch 2:
    # the batch axis is dynamic. The reference is what `segkit predict` computes around the model.
    sizes = [(size, size)] + ([(size + 21, size + 45), (size - 27, size + 3)] if graph_size is None else [])
    predictor = Predictor(model, device="cpu")
    for h, w in sizes:
        x = torch.randn(2, 3, h, w)
        with torch.no_grad():
            expected = predictor.predict_logits(x).numpy()
        np.testing.assert_allclose(_run(path, x), expected, atol=1e-4, rtol=0, err_msg=f"{name} at {h}x{w}")


def test_onnx_of_a_downscaling_real_time_model_takes_any_size(tmp_path) -> None:
    # input_scale 0.5: the resize in and out of the network must stay symbolic in the graph.
    torch.manual_seed(0)
    model = build_model("ddrnet_23_slim", num_classes=3, input_scale=0.5).eval()
    path = export_onnx(model, tmp_path / "ddrnet.onnx", (64, 64))
    for h, w in [(64, 64), (97, 131), (120, 80)]:
        x = torch.randn(1, 3, h, w)
        with torch.no_grad():
            expected = model(x).numpy()
        np.testing.assert_allclose(_run(path, x), expected, atol=1e-4, rtol=0, err_msg=f"at {h}x{w}")


def test_unexportable_size_is_a_clear_error(tmp_path) -> None:
    model = build_model("pspnet", num_classes=2, **SMALL["pspnet"])
    with pytest.raises(ValueError, match="multiples of 96"):
        export_onnx(model, tmp_path / "psp.onnx", (64, 64))


def test_cli_export_from_checkpoint(tmp_path, capsys) -> None:
    kw = {"encoder": "resnet18", "decoder_channels": [8, 8, 8, 8, 8]}
    model = build_model("unet", num_classes=2, **kw).eval()
    ckpt = save_checkpoint(
        {"model": model.state_dict(), "config": {"model": {"name": "unet", **kw}}, "num_classes": 2},
        tmp_path / "best.pt",
    )
    out = tmp_path / "model.onnx"
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(out), "--size", "40", "72"]) == 0
    assert "wrote" in capsys.readouterr().out
    x = torch.randn(1, 3, 40, 72)
    with torch.no_grad():
        np.testing.assert_allclose(_run(out, x), model(x).numpy(), atol=1e-4, rtol=0)


def test_cli_export_bad_size_is_one_line_error(tmp_path, capsys) -> None:
    kw = {"encoder": "resnet18", "psp_out_channels": 16}
    model = build_model("pspnet", num_classes=2, **kw)
    ckpt = save_checkpoint(
        {"model": model.state_dict(), "config": {"model": {"name": "pspnet", **kw}}, "num_classes": 2},
        tmp_path / "p.pt",
    )
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(tmp_path / "p.onnx"), "--size", "64", "64"]) == 2
    assert "multiples of 96" in capsys.readouterr().err


def test_cli_export_of_plain_state_dict_is_one_line_error(tmp_path, capsys) -> None:
    torch.save({"w": torch.zeros(1)}, tmp_path / "plain.pt")
    assert main(["export", "--checkpoint", str(tmp_path / "plain.pt"), "--out", str(tmp_path / "m.onnx")]) == 2
    assert "no model config" in capsys.readouterr().err
