"""folder and ``segkit inspect``: counts that tell the folder from the split, remedies in the form the command takes."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from segkit.cli import main
from segkit.datasets import BadSampleError, build_dataset


def _folder(root, n, missing=(), sub=""):
    rng = np.random.default_rng(0)
    for folder in ("images", "masks"):
        (root / sub / folder).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (8, 10, 3), dtype=np.uint8)).save(root / sub / "images" / f"s{i:02d}.png")
        if i not in missing:
            mask = np.zeros((8, 10), np.uint8)
            mask[:, : 2 + i % 5] = 1
            Image.fromarray(mask).save(root / sub / "masks" / f"s{i:02d}.png")


def test_a_missing_mask_is_counted_in_the_folder_then_in_the_split(tmp_path):
    _folder(tmp_path, 30, missing=(4, 27, 29))
    (tmp_path / "train.txt").write_text("\n".join(f"s{i:02d}" for i in range(27)) + "\n")
    with pytest.raises(BadSampleError) as e:
        build_dataset("folder", root=tmp_path, split="train", verbose=False)
    text = str(e.value)
    assert "3 of the 30 images of the folder have no label file, 1 of them among the 27 images of split 'train'" in text
    assert "s04.png" in text and "s27.png" not in text


def test_inspect_reads_every_split_of_a_train_val_folder(tmp_path, capsys):
    _folder(tmp_path, 4, sub="train")
    _folder(tmp_path, 2, sub="val")
    assert main(["inspect", "--dataset", "folder", "--root", str(tmp_path), "--no-picture"]) == 0
    out = capsys.readouterr().out
    heads = [line for line in out.splitlines() if line.startswith("segkit inspect:")]
    assert heads == [f"segkit inspect: folder at {tmp_path}, train", f"segkit inspect: folder at {tmp_path}, val"]
    assert "4 images" in out and "2 images" in out


def test_inspect_prints_a_remedy_the_command_line_takes_and_takes_it(tmp_path, capsys):
    _folder(tmp_path, 5, missing=(2,))
    args = ["inspect", "--dataset", "folder", "--root", str(tmp_path), "--no-picture"]
    assert main(args) == 2
    err = capsys.readouterr().err
    remedy = "--set 'data.on_bad_sample=\"skip\"'"
    assert "1 of 5 images have no label file" in err and remedy in err
    assert main([*args, "--set", 'data.on_bad_sample="skip"']) == 0  # the remedy as the shell passes it
    assert "4 images" in capsys.readouterr().out
