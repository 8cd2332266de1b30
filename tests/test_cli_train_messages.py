"""``segkit train`` says the truth: what the run starts from (a checkpoint given by ``--set model.weights=``),
whether the load was whole or gave a new head, the padding notice of a validation split the training crops do
not reach, and the per-class table of the best checkpoint at the end."""

import re

import numpy as np
import pytest
import torch

from segkit import Trainer, build_model
from segkit.checkpoint import load_checkpoint, save_checkpoint
from segkit.cli import _best_table, main
from segkit.datasets import build_dataset
from segkit.models.weights import load_weights
from tests.engine._nets import TinyNet
from tests.engine._varied import write_varied_folder
from tests.test_cli_folder import write_photo_folder

TINY = ["--encoder", "resnet18", "--set", "model.decoder_channels=[8,8,8,8,8]"]


def _unet(num_classes):
    return build_model("unet", encoder="resnet18", num_classes=num_classes, decoder_channels=(8, 8, 8, 8, 8))


def test_a_checkpoint_given_with_set_is_named_and_its_whole_load_confirmed(tmp_path, capsys):
    root = write_photo_folder(tmp_path / "data", sizes=[(40, 48)] * 6)
    torch.manual_seed(1)
    save_checkpoint({"model": _unet(3).state_dict()}, tmp_path / "start.pt")  # the folder's 3 classes
    args = ["train", "--data", str(root), "--epochs", "1", "--image-size", "32", "--batch-size", "4", *TINY]
    assert main([*args, "--set", f"model.weights={tmp_path / 'start.pt'}", "--out", str(tmp_path / "run")]) == 0
    out, err = capsys.readouterr()
    assert "random initial weights" not in out
    assert f"segkit train: initial weights from {tmp_path / 'start.pt'}" in out
    count = len(_unet(3).state_dict())
    assert f"weights {tmp_path / 'start.pt'}: all {count} tensors loaded" in err


def test_a_load_with_another_class_count_names_the_tensors_left_out(tmp_path, capsys):
    torch.manual_seed(1)
    source = _unet(5)
    save_checkpoint({"model": source.state_dict()}, tmp_path / "five.pt")
    model = load_weights(_unet(3), tmp_path / "five.pt", num_classes=3)
    err = capsys.readouterr().err
    line = next(x for x in err.splitlines() if x.startswith(f"weights {tmp_path / 'five.pt'}"))
    named = line.split("not loaded: ")[1].split(", ")
    differing = [k for k, v in model.state_dict().items() if v.shape != source.state_dict()[k].shape]
    assert sorted(named) == sorted(differing) == ["model.segmentation_head.0.bias", "model.segmentation_head.0.weight"]
    assert "new head for 3 classes (the file has 5)" in line and "all" not in line


def test_a_run_without_weights_says_random(tmp_path, capsys):
    root = write_photo_folder(tmp_path / "data", sizes=[(40, 48)] * 4)
    args = ["train", "--data", str(root), "--epochs", "1", "--image-size", "32", "--batch-size", "2", *TINY]
    assert main([*args, "--out", str(tmp_path / "run")]) == 0
    out, err = capsys.readouterr()
    assert "segkit train: random initial weights" in out and "tensors loaded" not in err


def test_padding_notice_of_validation_does_not_ask_for_crops(tmp_path, tiny_shapes, capsys):
    """Training at one size (shapes, 32 px) and a validation folder of varied sizes: the one padding line is
    about validation and tells the user nothing to set; a varied training split gets the remedy."""
    write_varied_folder(tmp_path / "varied", num_classes=3, ignore_value=255)
    val = build_dataset("folder", root=tmp_path / "varied", num_classes=4)
    trainer = Trainer(TinyNet(num_classes=4), "ce", tiny_shapes("train", 4, 32), val, epochs=1, batch_size=4,
                      out_dir=tmp_path / "a", device="cpu")  # fmt: skip
    trainer.fit()
    out = capsys.readouterr().out
    notices = [line for line in out.splitlines() if "images of different sizes in a batch" in line]
    assert len(notices) == 1 and notices[0].startswith("validation images") and "nothing to set" in notices[0]
    assert "crop" not in notices[0] and "image_size" not in notices[0]
    train = build_dataset("folder", root=tmp_path / "varied", num_classes=3)
    Trainer(TinyNet(num_classes=3), "ce", train, None, epochs=1, batch_size=4, out_dir=tmp_path / "b").fit()
    notices = [line for line in capsys.readouterr().out.splitlines() if "images of different sizes" in line]
    assert len(notices) == 1 and notices[0].startswith("training images") and "crop_size" in notices[0]


def _table_rows(text):
    """``{class: (iou, dice, acc)}`` of a ``ConfusionMatrix.table`` in ``text`` (n/a -> nan)."""
    rows = {}
    for line in text.splitlines():
        m = re.match(r"^(\S+)\s+(n/a|\d\.\d{4})\s+(n/a|\d\.\d{4})\s+(n/a|\d\.\d{4})$", line)
        if m:
            rows[m.group(1)] = tuple(float("nan") if v == "n/a" else float(v) for v in m.groups()[1:])
    return rows


def test_the_end_of_a_run_prints_the_best_checkpoints_table(tmp_path, capsys):
    root = write_photo_folder(tmp_path / "data")
    run = tmp_path / "run"
    args = ["train", "--data", str(root), "--epochs", "2", "--image-size", "32", "--batch-size", "4", *TINY]
    assert main([*args, "--out", str(run)]) == 0
    out = capsys.readouterr().out
    assert f"per-class scores of {run / 'best.pt'}" in out
    printed = _table_rows(out)
    assert set(printed) == {"class_0", "class_1", "class_2", "mean"}
    # The same numbers as `segkit evaluate` of best.pt (its own model-from-checkpoint path and validation).
    assert main(["evaluate", "--checkpoint", str(run / "best.pt")]) == 0
    evaluated = _table_rows(capsys.readouterr().out)
    np.testing.assert_array_equal(np.array(list(printed.values())), np.array(list(evaluated.values())))


def test_best_table_validates_best_pt_again_when_the_last_epoch_was_not_the_best(tmp_path, tiny_shapes):
    train, val = tiny_shapes("train", 4, 32), tiny_shapes("val", 4, 32)
    trainer = Trainer(TinyNet(num_classes=4), "ce", train, val, epochs=1, batch_size=4, out_dir=tmp_path)
    metrics = trainer.fit()
    torch.nn.init.zeros_(trainer.module.head.weight)  # the trainer's weights now differ from best.pt's
    torch.nn.init.constant_(trainer.module.head.bias, 0.0)
    trainer.module.head.bias.data[3] = 1.0  # predicts class 3 everywhere
    worse = trainer.validate()  # a last epoch worse than best.pt: its confusion matrix is the last one
    table = _best_table(trainer, {**metrics, "val/miou": worse["miou"]})  # best.pt reloaded and validated
    reference = Trainer(TinyNet(num_classes=4), "ce", None, val, out_dir=tmp_path / "ref")
    reference.module.load_state_dict(load_checkpoint(tmp_path / "best.pt")["model"])
    reference.validate()
    assert table.splitlines()[1:] == reference.last_confusion.table().splitlines()
    assert worse["miou"] != pytest.approx(metrics["val/miou"], abs=1e-4)  # the two tables differ
    assert _table_rows(table)["mean"][0] == pytest.approx(metrics["val/miou"], abs=1e-4)
