"""The config saved beside checkpoints runs from any working directory: every path in it is absolute."""

from pathlib import Path

import torch
import yaml

from segkit.checkpoint import save_checkpoint
from segkit.cli import main
from segkit.config import absolute_paths
from segkit.models import build_model
from tests.test_cli_folder import write_photo_folder

UNET = {"encoder": "resnet18", "decoder_channels": [8, 8, 8, 8, 8]}


def test_a_saved_run_reruns_from_another_working_directory(tmp_path, monkeypatch, capsys):
    """The issue's run: relative --data, relative --set model.weights=, relative --out; then
    ``segkit train --config work/run/config.yaml`` from another folder."""
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    elsewhere.mkdir()
    write_photo_folder(work / "data", sizes=[(40, 48)] * 6)
    torch.manual_seed(0)
    (work / "start").mkdir()
    save_checkpoint({"model": build_model("unet", num_classes=3, **UNET).state_dict()}, work / "start" / "w.pt")
    monkeypatch.chdir(work)
    args = ["train", "--data", "data", "--epochs", "1", "--image-size", "32", "--batch-size", "4", "--out", "run"]
    overrides = ["--set", "model.decoder_channels=[8,8,8,8,8]", "--set", "model.weights=start/w.pt"]
    assert main([*args, "--encoder", "resnet18", *overrides]) == 0
    saved = yaml.safe_load((work / "run" / "config.yaml").read_text())
    assert saved["model"]["weights"] == str(work / "start" / "w.pt")
    assert saved["data"]["root"] == str(work / "data") and saved["train"]["out_dir"] == str(work / "run")
    assert Path(saved["data"]["train"]["split"]).is_absolute() and Path(saved["data"]["val"]["split"]).is_absolute()
    before = (work / "run" / "last.pt").stat().st_mtime_ns
    capsys.readouterr()

    monkeypatch.chdir(elsewhere)
    assert main(["train", "--config", str(work / "run" / "config.yaml")]) == 0, capsys.readouterr().err
    assert f"weights {work / 'start' / 'w.pt'}: all" in capsys.readouterr().err  # the same start, found
    assert (work / "run" / "last.pt").stat().st_mtime_ns > before  # the run's own folder, not elsewhere/run
    assert not any(elsewhere.iterdir())


def test_absolute_paths_leaves_names_and_root_relative_folders(tmp_path):
    (tmp_path / "data" / "train" / "image").mkdir(parents=True)
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "train.txt").write_text("a\n")
    (tmp_path / "coco_images").mkdir()
    (tmp_path / "image").mkdir()  # also in the working directory: the root's own wins
    raw = {
        "model": {"name": "unet", "encoder_weights": "imagenet", "weights": "missing.pt"},
        "data": {
            "name": "folder",
            "root": "data",
            "image_dir": "image",  # the folder dataset's: under root's split folder
            "train": {"split": "lists/train.txt"},
            "val": {"split": "val", "image_dir": "coco_images"},  # only in the working directory
        },
        "train": {"out_dir": "runs/x"},
        "trackers": ["jsonl", {"name": "tensorboard", "run_dir": "tb"}],
    }
    out = absolute_paths(raw, tmp_path)
    assert out["model"] == raw["model"]  # a name, and a file that does not exist here: left as written
    assert out["data"]["root"] == str(tmp_path / "data") and out["data"]["image_dir"] == "image"
    assert out["data"]["train"]["split"] == str(tmp_path / "lists" / "train.txt")
    assert out["data"]["val"] == {"split": "val", "image_dir": str(tmp_path / "coco_images")}
    assert out["train"]["out_dir"] == str(tmp_path / "runs" / "x")
    assert out["trackers"] == ["jsonl", {"name": "tensorboard", "run_dir": str(tmp_path / "tb")}]
    assert raw["data"]["root"] == "data"  # the input is not changed
