"""A semantic ONNX file deploys from its own metadata: `segkit export` (any H and W), the docs' onnxruntime-only
script (examples/onnx_semantic.py, run with torch unimportable) and `segkit predict --onnx` give `segkit predict`'s
masks on an image of another size than the traced one, in the training masks' encoding."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from segkit.checkpoint import save_checkpoint
from segkit.cli import main
from segkit.models import build_model

ort = pytest.importorskip("onnxruntime")
tifffile = pytest.importorskip("tifffile")

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "onnx_semantic.py"
# ImageNet statistics in uint8 units: what segkit records for 3-channel uint8 data (independent constants).
IMAGENET_MEAN_255 = [123.675, 116.28, 103.53]
IMAGENET_STD_255 = [58.395, 57.12, 57.375]
BINARY = {"kind": "grey", "values": [0, 255], "bits": 8, "source": "binary"}
RESIZED = [48, 64]
BANDS = {"mean": [1200.0, 900.0, 800.0, 2500.0], "std": [300.0, 250.0, 240.0, 600.0], "dtype": "uint16"}


def _checkpoint(tmp_path: Path, channels: int) -> Path:
    """A tiny U-Net's checkpoint as the Trainer writes it (random weights: varied predictions to compare)."""
    cfg = {"name": "unet", "encoder": "resnet18", "decoder_channels": [8, 8, 8, 8, 8], "num_classes": 2}
    if channels != 3:
        cfg["in_channels"] = channels
    torch.manual_seed(0)
    model = build_model(**cfg)
    return save_checkpoint(
        {
            "model": model.state_dict(),
            "config": {"model": cfg},
            "num_classes": 2,
            "class_names": ["background", "membrane"],
            "palette": [[0, 0, 0], [255, 255, 0]],
            "ignore_index": 255,
            "normalization": None if channels == 3 else BANDS,
            "mask_format": BINARY,
            # The multi-band run also trained on images resized to one size (a folder's image_size=).
            "input_size": None if channels == 3 else RESIZED,
        },
        tmp_path / "best.pt",
    )


def _image(folder: Path, channels: int) -> Path:
    """70x93 pixels: neither the traced 64x64 nor a multiple of the U-Net's 32."""
    folder.mkdir()
    rng = np.random.default_rng(1)
    if channels == 3:
        path = folder / "field.png"
        Image.fromarray(rng.integers(0, 256, (70, 93, 3), dtype=np.uint8)).save(path)
    else:  # raw 16-bit bands around the statistics above
        path = folder / "field.tif"
        tifffile.imwrite(path, rng.normal(1500, 500, (70, 93, channels)).clip(0, 65535).astype(np.uint16))
    return path


def _run_script_without_torch(*argv: str) -> subprocess.CompletedProcess:
    # Any `import torch` fails in this process: the script must need onnxruntime, numpy and Pillow only.
    runner = (
        "import runpy, sys; sys.modules['torch'] = None; "
        f"sys.argv = {[str(SCRIPT), *argv]!r}; runpy.run_path({str(SCRIPT)!r}, run_name='__main__')"
    )
    return subprocess.run([sys.executable, "-c", runner], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("channels", [3, 4])
def test_exported_file_runs_anywhere_like_segkit_predict(channels, tmp_path, capsys):
    ckpt = _checkpoint(tmp_path, channels)
    onnx_path = tmp_path / "model.onnx"
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(onnx_path), "--size", "64", "64"]) == 0
    assert "of any size" in capsys.readouterr().out

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape == ["batch", channels, "height", "width"]
    assert session.get_outputs()[0].shape == ["batch", 2, "height", "width"]
    meta = {k: json.loads(v) for k, v in session.get_modelmeta().custom_metadata_map.items()}
    expected_mean = IMAGENET_MEAN_255 if channels == 3 else BANDS["mean"]
    expected_std = IMAGENET_STD_255 if channels == 3 else BANDS["std"]
    assert meta["segkit.input_mean"] == pytest.approx(expected_mean)
    assert meta["segkit.input_std"] == pytest.approx(expected_std)
    assert meta["segkit.input_dtype"] == ("uint8" if channels == 3 else "uint16")
    assert meta["segkit.in_channels"] == channels and meta["segkit.num_classes"] == 2
    assert meta["segkit.class_names"] == ["background", "membrane"]
    assert meta["segkit.palette"] == [[0, 0, 0], [255, 255, 0]] and meta["segkit.ignore_index"] == 255
    assert meta["segkit.mask_format"] == BINARY and meta["segkit.task"] == "semantic"
    assert meta["segkit.graph_size"] is None  # any height and width
    assert meta["segkit.input_size"] == (None if channels == 3 else RESIZED)

    image = _image(tmp_path / "new", channels)
    base = ["predict", str(image.parent), "--device", "cpu", "--quiet"]
    assert main([*base, "--checkpoint", str(ckpt), "--out", str(tmp_path / "torch")]) == 0
    assert main([*base, "--onnx", str(onnx_path), "--out", str(tmp_path / "onnx")]) == 0
    done = _run_script_without_torch(str(onnx_path), str(tmp_path / "script"), str(image))
    assert done.returncode == 0, done.stderr
    assert f"{image.name}: " in done.stdout

    expected = np.asarray(Image.open(tmp_path / "torch" / "field_mask.png"))
    assert expected.shape == (70, 93) and set(np.unique(expected)) == {0, 255}  # 0/255, both classes present
    for other in ("onnx", "script"):
        with Image.open(tmp_path / other / "field_mask.png") as written:
            assert written.mode == "L"
            np.testing.assert_array_equal(np.asarray(written), expected, err_msg=other)
