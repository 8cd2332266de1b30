"""Training reports: curves from metrics.jsonl, confusion matrix, per-image IoU, `segkit report` on a tiny run."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from segkit.viz import per_image_miou, plot_confusion, plot_curves


def test_per_image_miou_matches_a_naive_loop():
    g = torch.Generator().manual_seed(0)
    pred = torch.randint(0, 4, (5, 9, 11), generator=g)
    target = torch.randint(0, 4, (5, 9, 11), generator=g)
    target[1, :3] = 255
    target[4] = 255  # all ignored -> NaN
    pred[2] = target[2]  # perfect -> 1.0
    got = per_image_miou(pred, target, 4)
    for n in range(5):
        valid = target[n] != 255
        ious = []
        for c in range(4):
            t, p = (target[n] == c) & valid, (pred[n] == c) & valid
            union = (t | p).sum().item()
            if union:
                ious.append((t & p).sum().item() / union)
        expected = float(np.mean(ious)) if ious else float("nan")
        np.testing.assert_allclose(got[n].item(), expected, equal_nan=True)
    assert got[2].item() == 1.0


def test_confusion_plot_is_row_normalised_with_blank_empty_rows():
    mat = np.array([[8, 2, 0], [0, 0, 0], [1, 1, 2]])
    fig = plot_confusion(mat, ["a", "b", "c"])
    shown = np.ma.filled(fig.axes[0].images[0].get_array(), np.nan)
    np.testing.assert_allclose(shown, [[0.8, 0.2, 0], [np.nan] * 3, [0.25, 0.25, 0.5]], equal_nan=True)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["a", "b", "c"]


def test_curves_plot_step_and_epoch_series(tmp_path):
    rows = [{"step": s, "train/loss": 1.0 / s, "train/lr": 0.1} for s in range(1, 6)]
    rows += [
        {"step": 5, "train/loss": 0.4, "val/miou": 0.3, "val/pixel_accuracy": 0.8, "epoch": 0},
        {"step": 10, "train/loss": 0.2, "val/miou": None, "val/pixel_accuracy": 0.9, "epoch": 1},
    ]
    path = tmp_path / "metrics.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    fig = plot_curves(path)
    loss_ax, val_ax = fig.axes
    np.testing.assert_allclose(loss_ax.lines[0].get_ydata(), [1, 0.5, 1 / 3, 0.25, 0.2])
    np.testing.assert_allclose(loss_ax.lines[1].get_xdata(), [5, 10])
    labels = [line.get_label() for line in val_ax.lines]
    assert labels == ["val/miou", "val/pixel_accuracy"]
    np.testing.assert_allclose(val_ax.lines[0].get_ydata(), [0.3, np.nan])  # null is NaN, not a crash
    np.testing.assert_allclose(val_ax.lines[1].get_xdata(), [1, 2])


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from segkit import Trainer
    from segkit.datasets import build_dataset

    out = tmp_path_factory.mktemp("run")
    model = {"name": "unet", "encoder": "resnet18", "decoder_channels": [16, 16, 8, 8, 8], "num_classes": 4}
    data = {
        "name": "shapes",
        "image_size": 32,
        "num_classes": 4,
        "train": {"split": "train", "num_images": 8},
        "val": {"split": "val", "num_images": 4},
    }
    trainer = Trainer(
        model,
        "ce",
        build_dataset("shapes", split="train", num_images=8, image_size=32),
        build_dataset("shapes", split="val", num_images=4, image_size=32),
        epochs=1,
        batch_size=8,
        log_every=1,
        out_dir=out,
        device="cpu",
        config={"model": model, "data": data, "loss": {"name": "ce"}},
    )
    trainer.fit()
    return out


def test_segkit_report_writes_three_pngs(tiny_run, tmp_path, capsys):
    from segkit.cli import main

    out = tmp_path / "report"
    assert main(["report", str(tiny_run), "--out", str(out), "--num-worst", "2", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    for name in ("curves", "confusion", "worst"):
        path = out / f"{name}.png"
        assert str(path) in printed
        with Image.open(path) as im:
            assert im.format == "PNG" and im.size[0] > 100


def test_worst_images_are_the_lowest_per_image_miou(tiny_run):
    from segkit.datasets import build_dataset
    from segkit.viz.report import evaluate_run, plot_worst

    result = evaluate_run(tiny_run, num_worst=2, device="cpu")
    worst = result["worst"]
    assert len(worst) == 2 and worst[0][0] <= worst[1][0]
    # independent recomputation: predict the whole val set in one batch and rank by per-image mIoU
    pred = result["predictor"]
    ds = build_dataset("shapes", split="val", num_images=4, image_size=32)
    samples = [ds[i] for i in range(len(ds))]
    p = pred.predict(torch.stack([s["image"] for s in samples]))
    scores = per_image_miou(p, torch.stack([s["mask"] for s in samples]), 4).tolist()
    np.testing.assert_allclose([w[0] for w in worst], sorted(scores)[:2], rtol=1e-6)
    assert result["confusion"].mat.sum().item() == 4 * 32 * 32
    fig = plot_worst(worst, pred.palette, pred.class_names)
    assert len(fig.axes) == 6


def test_report_on_a_missing_folder_exits_2(tmp_path, capsys):
    from segkit.cli import main

    assert main(["report", str(tmp_path / "nope")]) == 2
    assert "nope" in capsys.readouterr().err


def test_report_figures_go_to_trackers_and_curves_need_only_metrics(tmp_path):
    from segkit.viz import write_report

    class Recorder:
        def __init__(self):
            self.images = {}

        def log_images(self, images, step):
            self.images.update(images)

    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"step": 1, "train/loss": 1.0}\n{"step": 1, "train/loss": 0.9, "epoch": 0}\n')
    rec = Recorder()
    paths = write_report(run, trackers=[rec])
    assert [p.name for p in paths] == ["curves.png"] and paths[0].parent == run / "report"
    picture = rec.images["report/curves"]
    assert picture.dtype == np.uint8 and picture.ndim == 3 and picture.shape[2] == 3
    assert picture.std() > 0  # something was drawn
