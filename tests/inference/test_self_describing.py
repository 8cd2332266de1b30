"""Self-describing checkpoints: a model made by ``build_model`` records its name and arguments, every Trainer
checkpoint stores them, so a run built in Python without a config is served by ``Predictor`` and the CLI."""

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torchvision

from segkit import Predictor, Trainer, build_model
from segkit.checkpoint import CheckpointError, load_checkpoint
from segkit.cli import main
from tests.engine._nets import TinyNet

UNET = {"encoder": "resnet18", "decoder_channels": [16, 16, 8, 8, 8]}


def _fit(model, tiny_shapes, out_dir, **kwargs):
    trainer = Trainer(
        model,
        "ce",
        tiny_shapes("train", 8),
        tiny_shapes("val", 4),
        epochs=1,
        batch_size=4,
        device="cpu",
        out_dir=out_dir,
        **kwargs,
    )
    trainer.fit()
    assert trainer.config is None  # built in Python: no config anywhere
    return trainer


def test_build_model_records_plain_arguments_without_weight_options():
    model = build_model("unet", num_classes=np.int64(3), encoder_weights=None, weights_key="ema", **UNET)
    assert model.model_config == {"name": "unet", "num_classes": 3, **UNET}
    tupled = build_model("unet", num_classes=3, encoder="resnet18", decoder_channels=(16, 16, 8, 8, 8))
    assert tupled.model_config == model.model_config  # as a YAML config would say it
    # An argument that is not plain data (a class) cannot be recorded: no description rather than a wrong one.
    head = {"classes": 3, "activation": torch.nn.Sigmoid}
    assert build_model("unet", num_classes=3, aux_params=head, **UNET).model_config is None


@pytest.mark.parametrize("how", ["module", "mapping"])
def test_run_without_config_is_served_by_predictor_predict_and_export(tmp_path, tiny_shapes, capsys, how):
    model = (
        build_model("unet", num_classes=4, encoder_weights=None, **UNET)
        if how == "module"
        else {"name": "unet", **UNET}
    )
    trainer = _fit(model, tiny_shapes, tmp_path / "run")
    best = tmp_path / "run" / "best.pt"
    ckpt = load_checkpoint(best)
    assert ckpt["config"] is None and ckpt["model_config"] == {"name": "unet", "num_classes": 4, **UNET}

    predictor = Predictor.from_checkpoint(best, device="cpu")
    x = torch.randn(2, 3, 32, 32)
    trained = trainer.eval_model.eval()
    with torch.no_grad():
        torch.testing.assert_close(predictor.predict_logits(x), trained(x), atol=1e-6, rtol=0)

    images = tmp_path / "images"
    from segkit.datasets.shapes import write_images

    write_images(str(images), count=1, image_size=32)
    assert main(["predict", "--checkpoint", str(best), str(images), "--out", str(tmp_path / "pred"), "--quiet"]) == 0
    assert (tmp_path / "pred" / "shapes_test_000_mask.png").is_file()

    onnx_path = tmp_path / "model.onnx"
    assert main(["export", "--checkpoint", str(best), "--out", str(onnx_path), "--size", "32", "32"]) == 0
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"image": x.numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(logits, trained(x).numpy(), atol=1e-4)
    capsys.readouterr()


def test_encoder_weights_file_is_not_reapplied_when_rebuilding(tmp_path, tiny_shapes):
    """The checkpoint holds the trained weights: the encoder file the run started from is not read again."""
    encoder_file = tmp_path / "resnet18_encoder.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), encoder_file)
    model = build_model("unet", num_classes=4, encoder_weights=str(encoder_file), **UNET)
    trainer = _fit(model, tiny_shapes, tmp_path / "run")
    encoder_file.unlink()  # re-applying it would fail (and would replace the trained encoder)
    best = tmp_path / "run" / "best.pt"
    predictor = Predictor.from_checkpoint(best, device="cpu")
    assert "encoder_weights" not in load_checkpoint(best)["model_config"]
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(predictor.predict_logits(x), trainer.eval_model.eval()(x), atol=1e-6, rtol=0)


def test_plain_module_checkpoint_still_gets_the_clear_error(tmp_path, tiny_shapes, capsys):
    _fit(TinyNet(num_classes=4), tiny_shapes, tmp_path / "run")
    best = tmp_path / "run" / "best.pt"
    assert load_checkpoint(best)["model_config"] is None
    with pytest.raises(CheckpointError, match="no model config inside"):
        Predictor.from_checkpoint(best, device="cpu")
    assert main(["export", "--checkpoint", str(best), "--out", str(tmp_path / "m.onnx")]) == 2
    assert "no model config inside" in capsys.readouterr().err
