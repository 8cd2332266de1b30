"""Each example runs in --quick mode (its main() imported, no subprocess) and leaves the outputs it promises."""

import importlib.util
import sys
from pathlib import Path

import pytest
from PIL import Image

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"segkit_example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _is_png(path) -> bool:
    with Image.open(path) as im:
        im.load()
        return im.format == "PNG" and min(im.size) > 0


@pytest.mark.parametrize("name", ["finetune_unet", "swap_losses", "custom_trainer", "plain_loop"])
def test_every_example_documents_quick_mode_and_real_data(name):
    module = _load(name)
    doc = module.__doc__
    assert "--quick" in doc and "pretrained" in doc.lower() and callable(module.main)


def test_finetune_unet(tmp_path, capsys):
    result = _load("finetune_unet").main(["--quick", "--out", str(tmp_path)])
    assert 0.0 <= result["miou"] <= 1.0 and result["checkpoint"].is_file()
    names = sorted(p.name for p in result["figures"] + result["report"])
    assert names == [
        "comparison_0.png",
        "comparison_1.png",
        "confusion.png",
        "curves.png",
        "overlay_0.png",
        "overlay_1.png",
        "worst.png",
    ]
    assert all(_is_png(p) for p in result["figures"] + result["report"])
    assert "pixel accuracy" in capsys.readouterr().out


def test_swap_losses_prints_a_row_per_available_loss(tmp_path, capsys):
    module = _load("swap_losses")
    assert module.available_losses(["ce", "no_such_loss", "ce+no_such_loss"]) == ["ce"]
    result = module.main(["--quick", "--out", str(tmp_path)])
    expected = module.available_losses()
    assert "ce" in expected and sorted(result["results"]) == sorted(expected)
    out = capsys.readouterr().out
    assert "loss" in out and "val mIoU" in out
    rows = [line.split() for line in out.splitlines() if line.split() and line.split()[0] in expected]
    assert {r[0] for r in rows} == set(expected)
    assert all(abs(float(r[1]) - result["results"][r[0]]) < 1e-4 for r in rows)


def test_custom_trainer_logs_the_auxiliary_term(tmp_path):
    from segkit.tracking.jsonl import read_jsonl

    result = _load("custom_trainer").main(["--quick", "--out", str(tmp_path)])
    history = result["history"]
    assert set(history) == {"loss", "loss/ce", "loss/tv"} and len(history["loss"]) == 2  # 8 images, batch 4
    for total, ce, tv in zip(history["loss"], history["loss/ce"], history["loss/tv"]):
        assert tv > 0 and total == pytest.approx(ce + tv, rel=1e-5)
    assert _is_png(result["plot"])
    rows = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert any("train/loss/tv" in r for r in rows)


def test_plain_loop_checkpoint_is_loadable(tmp_path):
    from segkit import Predictor

    result = _load("plain_loop").main(["--quick", "--out", str(tmp_path)])
    assert _is_png(result["overlay"])
    predictor = Predictor.from_checkpoint(result["checkpoint"], device="cpu")
    assert predictor.class_names[0] == "background" and predictor.palette.shape == (4, 3)
