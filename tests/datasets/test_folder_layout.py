"""folder: the layouts found in the wild, unmatched files named, image_size, and a 0/255 folder that trains."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from segkit.datasets import BadSampleError, build_dataset

SIZES = [(96, 128), (80, 100), (120, 90)]


def _pair(image_path, mask_path, h, w, seed):
    rng = np.random.default_rng(seed)
    for p in (image_path, mask_path):
        p.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(image_path, quality=90)
    mask = rng.integers(0, 3, (h, w)).astype(np.uint8)
    Image.fromarray(mask).save(mask_path)
    return mask


@pytest.mark.parametrize("suffix", ["_mask", "_label", "_gt", "_seg"])
@pytest.mark.parametrize("beside", [False, True], ids=["in_masks", "beside_images"])
def test_masks_with_a_stem_suffix_are_detected(tmp_path, suffix, beside):
    masks_dir = tmp_path / ("images" if beside else "masks")
    stored = {}
    for i, (h, w) in enumerate(SIZES):
        stored[f"a{i}"] = _pair(tmp_path / "images" / f"a{i}.jpg", masks_dir / f"a{i}{suffix}.png", h, w, i)
    ds = build_dataset("folder", root=tmp_path, verbose=False)
    assert [p.name for p, _ in ds.items] == ["a0.jpg", "a1.jpg", "a2.jpg"]  # masks beside are not images
    assert [m.name for _, m in ds.items] == [f"a{i}{suffix}.png" for i in range(3)]
    assert ds.layout.mask_suffix == suffix and ds.num_classes == 3
    np.testing.assert_array_equal(ds.load_raw(1)[1], stored["a1"])


def test_flat_folder_and_explicit_mask_suffix(tmp_path):
    for i, (h, w) in enumerate(SIZES):
        _pair(tmp_path / f"leaf{i}.jpg", tmp_path / f"leaf{i}-annot.png", h, w, i)
    with pytest.raises(FileNotFoundError, match="masks/"):
        build_dataset("folder", root=tmp_path)  # "-annot" is not a known suffix
    ds = build_dataset("folder", root=tmp_path, mask_suffix="-annot", verbose=False)
    assert [(p.name, m.name) for p, m in ds.items] == [(f"leaf{i}.jpg", f"leaf{i}-annot.png") for i in range(3)]


def test_train_and_val_subfolders_by_split(tmp_path):
    for split, n in (("train", 3), ("val", 2)):
        for i in range(n):
            h, w = SIZES[i]
            _pair(
                tmp_path / split / "images" / f"{split}{i}.jpg", tmp_path / split / "masks" / f"{split}{i}.png", h, w, i
            )
    train = build_dataset("folder", root=tmp_path, split="train", verbose=False)
    val = build_dataset("folder", root=tmp_path, split="val", verbose=False)
    assert [p.name for p, _ in train.items] == ["train0.jpg", "train1.jpg", "train2.jpg"]
    assert [p.name for p, _ in val.items] == ["val0.jpg", "val1.jpg"]
    with pytest.raises(FileNotFoundError) as e:
        build_dataset("folder", root=tmp_path)
    assert "['train', 'val']" in str(e.value) and "split='train'" in str(e.value) and str(tmp_path) in str(e.value)
    with pytest.raises(FileNotFoundError) as e:
        build_dataset("folder", root=tmp_path, split="test")
    assert str(tmp_path / "test.txt") in str(e.value) and str(tmp_path / "test") in str(e.value)


def test_images_without_masks_are_counted_and_named(tmp_path, capsys):
    for i in range(6):
        h, w = SIZES[i % 3]
        _pair(tmp_path / "images" / f"s{i}.jpg", tmp_path / "masks" / f"s{i}.png", h, w, i)
    for i in (1, 4):
        (tmp_path / "masks" / f"s{i}.png").unlink()
    with pytest.raises(BadSampleError) as e:
        build_dataset("folder", root=tmp_path)
    text = str(e.value)
    assert "2 of 6 images have no label file" in text
    assert str(tmp_path / "images" / "s1.jpg") in text and str(tmp_path / "images" / "s4.jpg") in text
    assert "on_bad_sample='skip'" in text
    ds = build_dataset("folder", root=tmp_path, on_bad_sample="skip", verbose=False)
    assert [p.name for p, _ in ds.items] == ["s0.jpg", "s2.jpg", "s3.jpg", "s5.jpg"]
    err = capsys.readouterr().err
    assert "2 images without a mask dropped" in err and "s1.jpg" in err and err.count("\n") == 1


def test_masks_without_images_are_one_warning_line(tmp_path, capsys):
    for i in range(3):
        h, w = SIZES[i]
        _pair(tmp_path / "images" / f"s{i}.jpg", tmp_path / "masks" / f"s{i}.png", h, w, i)
    for name in ("extra_a.png", "extra_b.png"):
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "masks" / name)
    ds = build_dataset("folder", root=tmp_path, verbose=False)
    assert len(ds) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "2 masks have no image" in err
    assert str(tmp_path / "masks" / "extra_a.png") in err and "extra_b.png" in err


def test_split_list_still_selects_stems(tmp_path):
    for i in range(3):
        h, w = SIZES[i]
        _pair(tmp_path / "images" / f"s{i}.jpg", tmp_path / "masks" / f"s{i}_mask.png", h, w, i)
    (tmp_path / "val.txt").write_text("s2\ns0.jpg\n")
    ds = build_dataset("folder", root=tmp_path, split="val", num_classes=3, verbose=False)
    assert [(p.name, m.name) for p, m in ds.items] == [("s2.jpg", "s2_mask.png"), ("s0.jpg", "s0_mask.png")]


def test_image_size_resizes_images_and_masks_so_batches_share_a_size(tmp_path):
    stored = [
        _pair(tmp_path / "images" / f"s{i}.jpg", tmp_path / "masks" / f"s{i}.png", h, w, i)
        for i, (h, w) in enumerate(SIZES)
    ]
    ds = build_dataset("folder", root=tmp_path, image_size=(64, 48), verbose=False)
    from torch.utils.data import DataLoader

    from segkit.datasets import collate_semantic

    batch = next(iter(DataLoader(ds, batch_size=3, collate_fn=collate_semantic)))
    assert batch["image"].shape == (3, 3, 64, 48) and batch["mask"].shape == (3, 64, 48)
    # Nearest: every output label is the stored label at the source pixel OpenCV's nearest rule picks.
    h, w = SIZES[0]
    rows, cols = (np.arange(64) * h / 64).astype(int), (np.arange(48) * w / 48).astype(int)
    assert torch.equal(batch["mask"][0], torch.from_numpy(stored[0][rows][:, cols].astype(np.int64)))
    square = build_dataset("folder", root=tmp_path, image_size=32, verbose=False)
    assert square[1]["image"].shape == (3, 32, 32)
    with pytest.raises(ValueError, match="image_size"):
        build_dataset("folder", root=tmp_path, image_size=(0, 3), verbose=False)


def _binary_folder(root, n, seed):
    """Bright discs on noise, masks 255 on the disc (a 0/255 binary folder)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:64, :64]
    for i in range(n):
        cy, cx, r = rng.integers(20, 44), rng.integers(20, 44), rng.integers(12, 20)
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 < r**2
        image = rng.integers(0, 90, (64, 64, 3)).astype(np.uint8)
        image[disc] = rng.integers(170, 256, (int(disc.sum()), 3))
        (root / "images").mkdir(parents=True, exist_ok=True)
        (root / "masks").mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(root / "images" / f"d{i}.png")
        Image.fromarray(np.where(disc, 255, 0).astype(np.uint8)).save(root / "masks" / f"d{i}.png")


def test_a_0_255_binary_folder_trains_to_a_real_model(tmp_path):
    from torch import nn

    from segkit import Trainer

    _binary_folder(tmp_path / "train", 24, seed=0)
    _binary_folder(tmp_path / "val", 8, seed=1)
    train = build_dataset("folder", root=tmp_path / "train", verbose=False)
    val = build_dataset("folder", root=tmp_path / "val", verbose=False)
    assert train.num_classes == val.num_classes == 2
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 2, 1))
    trainer = Trainer(model, "ce", train, val, epochs=3, batch_size=8, lr=0.05, out_dir=tmp_path / "run", device="cpu")
    metrics = trainer.fit()
    assert metrics["train/loss"] > 0.001  # not the loss 0 of a one-class dataset
    assert metrics["val/iou/foreground"] > 0.5 and metrics["val/miou"] < 1.0
