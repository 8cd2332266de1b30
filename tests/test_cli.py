"""The segkit command end to end on a tiny config: train, evaluate, predict, list."""

import subprocess
import sys

import numpy as np
import pytest
import yaml
from PIL import Image

from segkit.cli import main


@pytest.fixture
def tiny_config(tmp_path):
    cfg = {
        "model": {"name": "unet", "encoder": "resnet18", "decoder_channels": [32, 16, 16, 8, 8]},
        "loss": "ce",
        "data": {
            "name": "shapes",
            "image_size": 32,
            "train": {"split": "train", "num_images": 16},
            "val": {"split": "val", "num_images": 8},
        },
        "train": {"epochs": 1, "batch_size": 8, "out_dir": str(tmp_path / "run")},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_train_evaluate_predict(tmp_path, tiny_config, capsys):
    assert main(["train", "--config", str(tiny_config), "--set", "train.lr=0.002"]) == 0
    out = capsys.readouterr().out
    assert "final val mIoU" in out
    run = tmp_path / "run"
    assert (run / "best.pt").is_file() and (run / "config.yaml").is_file()
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["lr"] == 0.002

    assert main(["evaluate", "--checkpoint", str(run / "best.pt")]) == 0
    table = capsys.readouterr().out
    assert "circle" in table and "pixel accuracy" in table

    from segkit.datasets.shapes import write_images

    images = tmp_path / "images"
    write_images(str(images), count=2, image_size=40)
    (images / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    assert main(["predict", "--checkpoint", str(run / "best.pt"), str(images), "--out", str(tmp_path / "pred")]) == 0
    err = capsys.readouterr().err
    assert "broken.png" in err
    overlay = Image.open(tmp_path / "pred" / "shapes_test_000_overlay.png")
    assert overlay.size == (40, 40) and overlay.mode == "RGB"
    mask = Image.open(tmp_path / "pred" / "shapes_test_000_mask.png")
    assert mask.mode == "P" and np.asarray(mask).max() < 4


def test_bad_config_exits_2_with_the_key(tmp_path, tiny_config, capsys):
    assert main(["train", "--config", str(tiny_config), "--set", "train.epochz=1"]) == 2
    assert "train.epochz: unknown key" in capsys.readouterr().err


def test_list_prints_names_with_first_docstring_line(capsys):
    assert main(["list", "models"]) == 0
    out = capsys.readouterr().out
    assert "unet" in out and "U-Net" in out


def test_console_entry_point_runs():
    res = subprocess.run([sys.executable, "-m", "segkit.cli", "list", "losses"], capture_output=True, text=True)
    assert res.returncode == 0 and "ce" in res.stdout


def test_evaluate_reproduces_the_recorded_score_of_an_ema_run(tmp_path, tiny_config, capsys):
    """best.pt was chosen with the EMA weights: evaluate serves those, so it prints the recorded val/miou."""
    import torch

    assert main(["train", "--config", str(tiny_config), "--set", "train.ema=0.5", "--set", "train.epochs=2"]) == 0
    best = torch.load(tmp_path / "run" / "best.pt", weights_only=True)
    assert best["ema"] is not None
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(tmp_path / "run" / "best.pt")]) == 0
    mean = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("mean"))
    assert float(mean.split()[1]) == pytest.approx(best["metrics"]["val/miou"], abs=5e-5)
