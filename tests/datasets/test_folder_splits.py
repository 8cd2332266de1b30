"""folder splits share the folder's encoding: one class count for every split, and negative-only splits accepted."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from segkit.datasets import build_dataset
from segkit.datasets.mask_encoding import MaskEncodingError

SIZES = [(60, 80), (72, 96), (90, 70), (120, 96)]


def _pair(image_path, mask_path, mask, seed):
    rng = np.random.default_rng(seed)
    h, w = mask.shape
    image_path.parent.mkdir(parents=True, exist_ok=True)
    mask_path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(image_path, quality=90)
    Image.fromarray(mask).save(mask_path)


def _labels(h, w, top, fg=None):
    """Bands of classes ``0..top`` (``fg``: the value stored for every non-zero class)."""
    mask = (np.arange(h)[:, None] * (top + 1) // h).repeat(w, 1).astype(np.uint8)
    return mask if fg is None else np.where(mask > 0, fg, 0).astype(np.uint8)


def _subfolders(root, train_top, val_top, fg=None):
    for split, top in (("train", train_top), ("val", val_top)):
        for i, (h, w) in enumerate(SIZES):
            mask = _labels(h, w, top, fg) if top else np.zeros((h, w), np.uint8)
            _pair(root / split / "images" / f"{split}{i}.jpg", root / split / "masks" / f"{split}{i}.png", mask, i)


def test_splits_infer_one_class_count_over_the_whole_folder(tmp_path, capsys):
    _subfolders(tmp_path, train_top=2, val_top=3)
    train = build_dataset("folder", root=tmp_path, split="train")
    val = build_dataset("folder", root=tmp_path, split="val")
    assert train.num_classes == val.num_classes == 4
    assert train.class_pixel_share[3] == 0 and val.class_pixel_share[3] > 0  # each split's own shares
    np.testing.assert_array_equal(val.load_raw(0)[1], _labels(*SIZES[0], 3))
    out = capsys.readouterr().out
    assert out.count("index masks (values 0..3") == 1  # the folder's block once, then one line per split
    assert len([line for line in out.splitlines() if line.startswith("folder split 'val'")]) == 1


def test_a_val_label_beyond_the_given_classes_is_refused(tmp_path):
    _subfolders(tmp_path, train_top=2, val_top=3)
    with pytest.raises(MaskEncodingError) as e:
        build_dataset("folder", root=tmp_path, split="val", num_classes=3, verbose=False)
    assert "label values [3]" in str(e.value) and "val" in str(e.value) and "num_classes=4" in str(e.value)


@pytest.mark.parametrize("fg", [None, 255], ids=["index", "binary_0_255"])
@pytest.mark.parametrize("given", [None, 2], ids=["inferred", "given"])
def test_a_val_split_of_only_background_is_accepted(tmp_path, capsys, fg, given):
    _subfolders(tmp_path, train_top=1, val_top=0, fg=fg)
    train = build_dataset("folder", root=tmp_path, split="train", num_classes=given)
    val = build_dataset("folder", root=tmp_path, split="val", num_classes=given)
    assert train.num_classes == val.num_classes == 2
    assert val.encoding.kind == train.encoding.kind == ("binary" if fg else "index")
    np.testing.assert_allclose(val.class_pixel_share, [1.0, 0.0])
    assert int(val.load_raw(1)[1].max()) == 0
    assert "holds only class 0" in capsys.readouterr().out


def test_a_split_list_of_negatives_is_accepted_and_a_blank_folder_is_not(tmp_path):
    for i, (h, w) in enumerate(SIZES):
        mask = _labels(h, w, 1) if i < 3 else np.zeros((h, w), np.uint8)
        _pair(tmp_path / "images" / f"s{i}.jpg", tmp_path / "masks" / f"s{i}.png", mask, i)
    (tmp_path / "train.txt").write_text("s0\ns1\ns2\n")
    (tmp_path / "val.txt").write_text("s3\n")
    val = build_dataset("folder", root=tmp_path, split="val", verbose=False)
    assert val.num_classes == 2 and len(val) == 1
    # The check applies to the whole folder: blank everywhere is still refused.
    for i, (h, w) in enumerate(SIZES):
        Image.fromarray(np.zeros((h, w), np.uint8)).save(tmp_path / "masks" / f"s{i}.png")
    with pytest.raises(MaskEncodingError, match="nothing to learn"):
        build_dataset("folder", root=tmp_path, split="val", verbose=False)
