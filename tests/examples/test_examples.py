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


@pytest.mark.parametrize(
    "name", ["finetune_unet", "swap_losses", "custom_trainer", "plain_loop", "maskrcnn_inference", "neptune_tracking"]
)
def test_every_example_documents_quick_mode_and_real_data(name):
    module = _load(name)
    doc = module.__doc__
    assert "--quick" in doc and "pretrained" in doc.lower() and callable(module.main)


def test_finetune_unet(tmp_path, capsys):
    result = _load("finetune_unet").main(["--quick", "--out", str(tmp_path)])
    assert 0.0 <= result["miou"] <= 1.0 and 0.0 <= result["scratch_miou"] <= 1.0 and result["checkpoint"].is_file()
    err = capsys.readouterr()
    # The 6-class model took the 4-class checkpoint's body and a new head, and named what it did not load.
    assert "new head for 6 classes (the file has 4)" in err.err and "unfrozen model.encoder" in err.out
    names = sorted(p.name for p in result["figures"] + result["report"])
    assert names == ["comparison_test_0000.png", "comparison_test_0001.png", "confusion.png", "curves.png", "worst.png"]
    assert all(_is_png(p) for p in result["figures"] + result["report"])
    assert "pixel accuracy" in err.out


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


def test_maskrcnn_inference_counts_fall_as_the_threshold_rises(tmp_path, capsys):
    import numpy as np

    result = _load("maskrcnn_inference").main(["--quick", "--out", str(tmp_path)])
    assert result["source"] == "shapes"
    counts, detections = result["counts"], result["detections"]
    thresholds = sorted(counts)
    # Independent count: scores at or above each threshold, over all images.
    for t in thresholds:
        assert counts[t] == sum(int(np.sum(d.scores >= t)) for d in detections)
    assert all(counts[a] >= counts[b] for a, b in zip(thresholds, thresholds[1:]))
    assert counts[thresholds[0]] > 0  # something to draw at the lowest threshold
    # The model-level threshold (InferenceConfig / box_score_thresh) keeps what the filter keeps.
    assert result["strict_count"] == counts[thresholds[-1]]
    assert len(result["figures"]) == 3 * len(detections) and all(_is_png(p) for p in result["figures"])
    # Drawn at the highest threshold with nothing kept, the picture is the untouched image;
    # at the lowest, pixels change wherever instances were drawn.
    for image, det, low, high in zip(result["images"], detections, result["figures"][0::3], result["figures"][1::3]):
        if len(det.filter(thresholds[-1])) == 0:
            assert np.array_equal(np.asarray(Image.open(high).convert("RGB")), image)
        assert (len(det) > 0) == (not np.array_equal(np.asarray(Image.open(low).convert("RGB")), image))
    out = capsys.readouterr().out
    rows = {
        float(r[0]): int(r[1]) for r in (line.split() for line in out.splitlines()) if len(r) == 2 and r[1].isdigit()
    }
    assert rows == counts


def test_neptune_tracking_offline_run_holds_config_metrics_images_histograms(tmp_path, capsys):
    result = _load("neptune_tracking").main(["--quick", "--out", str(tmp_path)])
    run = result["neptune_run"]
    assert run.is_dir() and run.parent == tmp_path / ".neptune" / "offline"
    record = result["record"]
    assert record.params["model"]["name"] == "unet" and record.params["train"]["epochs"] == 1
    series = {k for _, m in record.metrics for k in m}
    assert {"train/loss", "train/lr", "val/miou"} <= series
    names = {name for name, _, _ in record.images}
    assert {"test/prediction", "val/prediction", "weights/histograms"} <= names
    assert _is_png(result["histograms"])
    assert list(result["tensorboard"].glob("events.out.tfevents.*"))
    out = capsys.readouterr().out
    assert "neptune sync" in out and f"segkit runs export {run} --to tensorboard" in out
