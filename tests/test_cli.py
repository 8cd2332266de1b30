"""The segkit command end to end on a tiny config: train, evaluate, predict, list."""

import subprocess
import sys

import numpy as np
import pytest
import torch
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


def _printed_table(out):
    """``{row: (IoU, Dice, Acc)}`` of the class rows and ``mean``, and the pixel accuracy, from evaluate's output."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:4] == ["class", "IoU", "Dice", "Acc"])
    rows = {}
    for line in lines[start + 1 :]:
        if line.startswith("pixel accuracy"):
            return rows, float(line.split()[-1])
        name, *values = line.split()
        rows[name] = tuple(float("nan") if v == "n/a" else float(v) for v in values)
    raise AssertionError(f"no pixel accuracy line in:\n{out}")


def _metrics_by_hand(checkpoint, weights_key):
    """Per-class IoU, Dice, accuracy, their means and pixel accuracy of ``checkpoint[weights_key]`` on the
    tiny config's val set: the model rebuilt from the config, argmax predictions, a numpy confusion matrix."""
    import torch

    from segkit.datasets import build_dataset
    from segkit.models import build_model

    model = build_model("unet", encoder="resnet18", decoder_channels=[32, 16, 16, 8, 8], num_classes=4)
    model.load_state_dict(checkpoint[weights_key])
    model.eval()
    data = build_dataset("shapes", split="val", num_images=8, image_size=32)
    with torch.no_grad():
        images = torch.stack([data[i]["image"] for i in range(len(data))])
        pred = model(images).argmax(1).numpy().ravel()
    target = np.stack([data[i]["mask"].numpy() for i in range(len(data))]).ravel()
    keep = target != 255
    cm = np.bincount(4 * target[keep] + pred[keep], minlength=16).reshape(4, 4).astype(float)  # rows: truth
    tp, truth, predicted = np.diag(cm), cm.sum(1), cm.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = tp / (truth + predicted - tp)  # NaN: class absent from target and prediction
        dice = 2 * tp / (truth + predicted)
        acc = tp / truth
    names = ["background", "circle", "square", "triangle"]
    rows = {n: (iou[i], dice[i], acc[i]) for i, n in enumerate(names)}
    rows["mean"] = (np.nanmean(iou), np.nanmean(dice), np.nanmean(acc))
    return rows, tp.sum() / cm.sum()


def _assert_table_matches(out, expected):
    rows, pixel_accuracy = _printed_table(out)
    want_rows, want_pixel = expected
    assert rows.keys() == want_rows.keys()
    for name, want in want_rows.items():
        for got, ref in zip(rows[name], want):
            assert (np.isnan(got) and np.isnan(ref)) or got == pytest.approx(ref, abs=1e-4), (name, rows[name], want)
    assert pixel_accuracy == pytest.approx(want_pixel, abs=1e-4)


def test_train_evaluate_predict(tmp_path, tiny_config, capsys):
    assert main(["train", "--config", str(tiny_config), "--set", "train.lr=0.002"]) == 0
    out = capsys.readouterr().out
    assert "final val mIoU" in out
    run = tmp_path / "run"
    assert (run / "best.pt").is_file() and (run / "config.yaml").is_file()
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["lr"] == 0.002

    assert main(["evaluate", "--checkpoint", str(run / "best.pt")]) == 0
    best = torch.load(run / "best.pt", weights_only=True)
    assert best["ema"] is None  # no EMA in this run: the trained weights are served
    _assert_table_matches(capsys.readouterr().out, _metrics_by_hand(best, "model"))

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
    # No warm-up of the decay, so the average lags the trained weights enough to score differently.
    overrides = ["train.ema=0.9", "train.ema_warmup=0", "train.epochs=2", "train.lr=0.02"]
    assert main(["train", "--config", str(tiny_config), *(a for o in overrides for a in ("--set", o))]) == 0
    best = torch.load(tmp_path / "run" / "best.pt", weights_only=True)
    assert best["ema"] is not None
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(tmp_path / "run" / "best.pt")]) == 0
    out = capsys.readouterr().out
    mean = next(line for line in out.splitlines() if line.startswith("mean"))
    assert float(mean.split()[1]) == pytest.approx(best["metrics"]["val/miou"], abs=5e-5)
    _assert_table_matches(out, _metrics_by_hand(best, "ema"))
    raw_rows, _ = _metrics_by_hand(best, "model")
    assert abs(raw_rows["mean"][0] - best["metrics"]["val/miou"]) > 0.01  # the raw weights score otherwise
