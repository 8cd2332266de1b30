"""Dataset files, case by case: what `raise` and `skip` do, and how unusual but valid image modes are read."""

from __future__ import annotations

import sys

import cv2
import numpy as np
import pytest
from PIL import Image

from segkit.datasets import BadSampleError, build_dataset

H, W = 12, 16


def _write_folder(root, n=3):
    rng = np.random.default_rng(0)
    for i in range(n):
        (root / "images").mkdir(parents=True, exist_ok=True)
        (root / "masks").mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (H, W, 3), dtype=np.uint8)).save(root / "images" / f"s{i}.png")
        Image.fromarray(rng.integers(0, 4, (H, W), dtype=np.uint8)).save(root / "masks" / f"s{i}.png")


def _zero_byte(root):
    (p := root / "images" / "s1.png").write_bytes(b"")
    return p, "empty file"


def _truncated_png(root):
    p = root / "images" / "s1.png"
    p.write_bytes(p.read_bytes()[:60])  # header intact, pixel data cut
    return p, "could not decode"


def _out_of_range(root):
    Image.fromarray(np.full((H, W), 7, np.uint8)).save(p := root / "masks" / "s1.png")
    return p, "label values [7] are neither a class in [0, 4) nor ignore_index 255"


def _sixteen_bit_out_of_range(root):
    cv2.imwrite(str(p := root / "masks" / "s1.png"), np.full((H, W), 300, np.uint16))
    return p, "label value 300 is neither a class nor ignore_index"


def _rgba_mask(root):
    Image.fromarray(np.zeros((H, W, 4), np.uint8)).save(p := root / "masks" / "s1.png")
    return p, "an RGB mask; pass palette="


def _size_mismatch(root):
    Image.fromarray(np.zeros((H, W + 1), np.uint8)).save(p := root / "masks" / "s1.png")
    return p, f"label size {W + 1}x{H} differs from image"


def _missing_mask(root):
    (root / "masks" / "s1.png").unlink()
    return root / "images" / "s1.png", "no label file"


# Caught at construction (headers only) unless check_files=False, then at load; the rest at load.
AT_CONSTRUCTION = {_zero_byte, _size_mismatch, _missing_mask}
CASES = [
    _zero_byte,
    _truncated_png,
    _out_of_range,
    _sixteen_bit_out_of_range,
    _rgba_mask,
    _size_mismatch,
    _missing_mask,
]


@pytest.mark.parametrize("make_bad", CASES, ids=[c.__name__.strip("_") for c in CASES])
def test_raise_names_the_file_and_the_reason(tmp_path, make_bad):
    _write_folder(tmp_path)
    path, reason = make_bad(tmp_path)
    if make_bad in AT_CONSTRUCTION:
        with pytest.raises(BadSampleError) as info:
            build_dataset("folder", root=tmp_path, num_classes=4)
        assert str(path) in str(info.value)
    ds = build_dataset("folder", root=tmp_path, num_classes=4, check_files=False)
    with pytest.raises(BadSampleError) as info:
        ds[1]
    message = str(info.value)
    assert str(path) in message and "[sample 1 of FolderDataset]" in message
    if make_bad is not _missing_mask:  # construction says "no label file", loading "no mask"
        assert reason in message, message
    assert ds[0]["mask"].shape == (H, W)  # the other samples still load


@pytest.mark.parametrize("make_bad", CASES, ids=[c.__name__.strip("_") for c in CASES])
@pytest.mark.parametrize("check_files", [True, False])
def test_skip_reports_the_file_once_and_serves_only_good_samples(tmp_path, make_bad, check_files, capsys):
    _write_folder(tmp_path)
    path, _ = make_bad(tmp_path)
    ds = build_dataset("folder", root=tmp_path, num_classes=4, on_bad_sample="skip", check_files=check_files)
    served = [ds[i]["path"] for i in range(len(ds)) for _ in range(2)]  # every sample twice
    good = {str(tmp_path / "images" / "s0.png"), str(tmp_path / "images" / "s2.png")}
    assert set(served) == good
    bad_image = str(tmp_path / "images" / "s1.png")
    assert list(ds.bad_samples.reasons) == [bad_image] and str(path) in ds.bad_samples.reasons[bad_image]
    err = capsys.readouterr().err
    assert err.count("skipped bad sample") == 1 and str(path) in err  # reported once, not per access
    assert len(ds) == (2 if check_files and make_bad in AT_CONSTRUCTION else 3)


def _reference_rgb(path):
    """Independent reference: PIL's RGB conversion (alpha dropped, palette expanded, grey replicated)."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "I;16", "RGB48"])
def test_unusual_image_modes_are_read_as_8_bit_rgb(tmp_path, mode):
    _write_folder(tmp_path, n=1)
    path = tmp_path / "images" / "s0.png"
    rng = np.random.default_rng(1)
    if mode == "L":
        Image.fromarray(rng.integers(0, 256, (H, W), dtype=np.uint8), "L").save(path)
    elif mode == "P":
        im = Image.fromarray(rng.integers(0, 8, (H, W), dtype=np.uint8), "P")
        im.putpalette(rng.integers(0, 256, 8 * 3, dtype=np.uint8).tolist())
        im.save(path)
    elif mode == "RGBA":
        Image.fromarray(rng.integers(0, 256, (H, W, 4), dtype=np.uint8), "RGBA").save(path)
    values = rng.integers(0, 65536, (H, W, 3), dtype=np.uint16)
    if mode == "I;16":
        cv2.imwrite(str(path), values[..., 0])
        want = np.repeat((values[..., :1] >> 8).astype(np.uint8), 3, axis=2)  # high byte, replicated
    elif mode == "RGB48":
        cv2.imwrite(str(path), values[..., ::-1])  # OpenCV writes BGR
        want = (values >> 8).astype(np.uint8)
    else:
        want = _reference_rgb(path)
    image, mask, _ = build_dataset("folder", root=tmp_path, num_classes=4).load_raw(0)
    assert image.dtype == np.uint8 and image.shape == (H, W, 3)
    np.testing.assert_array_equal(image, want)


@pytest.mark.parametrize("mode", ["P", "I;16", "L"])
def test_index_masks_in_palette_16_bit_and_grey_pngs_give_the_stored_indices(tmp_path, mode):
    _write_folder(tmp_path, n=1)
    path = tmp_path / "masks" / "s0.png"
    labels = np.random.default_rng(2).integers(0, 4, (H, W)).astype(np.uint8)
    labels[0, 0] = 255  # ignore_index stays ignored
    if mode == "P":  # the colours must not leak in: VOC-style masks are read as indices
        im = Image.fromarray(labels, "P")
        im.putpalette([200, 10, 10] * 256)
        im.save(path)
    elif mode == "I;16":  # Cityscapes-style 16-bit PNG
        cv2.imwrite(str(path), labels.astype(np.uint16))
    else:
        Image.fromarray(labels, "L").save(path)
    _, mask, _ = build_dataset("folder", root=tmp_path, num_classes=4).load_raw(0)
    np.testing.assert_array_equal(mask, labels)


@pytest.mark.skipif(sys.version_info < (3, 11), reason="exception notes (add_note) need Python 3.11")
def test_a_dataloader_worker_error_that_is_not_a_file_problem_names_the_sample(tmp_path):
    from torch.utils.data import DataLoader

    from segkit.datasets import collate_semantic

    _write_folder(tmp_path)

    def transforms(image, mask):
        if mask.max() < 99:  # every sample: a transform bug
            raise ValueError("transform exploded")

    ds = build_dataset("folder", root=tmp_path, num_classes=4, transforms=transforms)
    loader = DataLoader(ds, batch_size=1, num_workers=1, collate_fn=collate_semantic)
    with pytest.raises(ValueError) as info:
        next(iter(loader))
    text = str(info.value)
    assert "DataLoader worker process 0" in text and "transform exploded" in text
    assert f"while loading sample 0 ({tmp_path / 'images' / 's0.png'}) of FolderDataset" in text


def test_trainer_reports_the_skipped_count_at_the_end_of_each_epoch(tmp_path, capsys):
    from torch import nn

    from segkit import Trainer

    root = tmp_path / "data"
    _write_folder(root, n=4)
    path, _ = _truncated_png(root)
    data = build_dataset("folder", root=root, num_classes=4, on_bad_sample="skip")
    model = nn.Conv2d(3, 4, 3, padding=1)
    Trainer(model, "ce", data, None, epochs=2, batch_size=2, out_dir=tmp_path / "run").fit()
    err = capsys.readouterr().err
    assert err.count(str(path)) == 1  # the file itself is reported once, by the loader
    assert err.count("1 bad samples skipped this epoch") == 2  # and counted in every epoch
