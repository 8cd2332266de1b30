"""folder: masks saved at another size than their photo (Training_Images/ + Ground_Truth/), counted before training."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from segkit.datasets import BadSampleError, BadSampleLog, build_dataset

# (image H, W), half-size masks for most: a people-photo set ships its masks at a fraction of the photo's size.
SIZES = [(40, 60), (36, 48), (50, 50), (44, 66), (30, 40), (48, 36), (42, 42), (38, 58)]
FULL = {2, 5}  # these two have masks at full size
ODD = ("person_odd", (45, 61), (22, 30))  # half size rounded down: the same aspect within rounding


def _people_set(root, other_aspect=2):
    """Training_Images/*.jpg of varied sizes, Ground_Truth/*.png 0/255 masks; ``other_aspect`` of them cropped."""
    rng = np.random.default_rng(0)
    (root / "Training_Images").mkdir(parents=True)
    (root / "Ground_Truth").mkdir()
    stored = {}
    items = [(f"person_{i}", (h, w), (h, w) if i in FULL else (h // 2, w // 2)) for i, (h, w) in enumerate(SIZES)]
    for stem, (h, w), (mh, mw) in [*items, ODD]:
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / "Training_Images" / f"{stem}.jpg")
        mask = np.where(rng.random((mh, mw)) < 0.4, 255, 0).astype(np.uint8)
        Image.fromarray(mask).save(root / "Ground_Truth" / f"{stem}.png")
        stored[stem] = mask
    for stem, (h, _w), _ in items[:other_aspect]:  # a square crop: another aspect ratio than the photo
        Image.fromarray(np.zeros((h // 2, h // 2), np.uint8)).save(root / "Ground_Truth" / f"{stem}.png")
        stored.pop(stem)
    return stored


def test_masks_of_another_aspect_ratio_are_one_error_with_the_count_and_the_files(tmp_path):
    _people_set(tmp_path)
    with pytest.raises(BadSampleError) as e:
        build_dataset("folder", root=tmp_path, verbose=False)
    text = str(e.value)
    assert "2 of 9 masks differ in size from their image with another aspect ratio" in text
    assert str(tmp_path / "Ground_Truth" / "person_0.png") in text and "person_1.png is 18x18" in text
    assert "5 more with the image's aspect ratio would be resized" in text  # 9 - 2 cropped - 2 full size
    assert "on_bad_sample='skip'" in text and "--set 'data.on_bad_sample=\"skip\"'" in text


def test_masks_with_the_image_aspect_ratio_are_resized_nearest_and_said_once(tmp_path, capsys):
    stored = _people_set(tmp_path, other_aspect=0)
    ds = build_dataset("folder", root=tmp_path, verbose=False)
    assert len(ds) == 9 and ds.resized_masks == 7
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "resized" in line]
    assert len(lines) == 1 and "7 of 9 masks differ in size from their image with its aspect ratio" in lines[0]
    index = [p.stem for p, _ in ds.items].index("person_3")
    image, mask, _ = ds.load_raw(index)
    assert image.shape[:2] == mask.shape == (44, 66)
    # Nearest neighbour at twice the size: every stored pixel becomes a 2x2 block, 255 -> class 1.
    np.testing.assert_array_equal(mask, np.kron(stored["person_3"] // 255, np.ones((2, 2), np.uint8)))
    odd = ds.load_raw([p.stem for p, _ in ds.items].index("person_odd"))[1]
    assert odd.shape == (45, 61) and set(np.unique(odd)) <= {0, 1}
    with pytest.raises(BadSampleError) as e:
        build_dataset("folder", root=tmp_path, mask_resize="error", verbose=False)
    assert "7 of 9 masks differ in size from their image" in str(e.value)


def test_a_mask_larger_than_its_image_is_resized_down_by_pixel_centres(tmp_path, capsys):
    rng = np.random.default_rng(1)
    for folder in ("image", "label"):
        (tmp_path / folder).mkdir()
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)).save(tmp_path / "image" / f"{i}.png")
    big = rng.integers(0, 3, (24, 32)).astype(np.uint8)
    Image.fromarray(big).save(tmp_path / "label" / "0.png")
    Image.fromarray(big[::2, ::2]).save(tmp_path / "label" / "1.png")
    ds = build_dataset("folder", root=tmp_path, num_classes=3, check_files=False, verbose=False)
    # Without the scan (check_files=False) the loader still resizes: output pixel x samples input (x + 0.5) * 2.
    np.testing.assert_array_equal(ds.load_raw(0)[1], big[1::2, 1::2])
    np.testing.assert_array_equal(ds.load_raw(1)[1], big[::2, ::2])
    build_dataset("folder", root=tmp_path, num_classes=3, verbose=False)
    assert "1 of 2 masks differ in size from their image with its aspect ratio (1 larger" in capsys.readouterr().err


def test_skip_drops_the_cropped_masks_in_one_line_with_the_total_and_the_share(tmp_path, capsys):
    _people_set(tmp_path)
    ds = build_dataset("folder", root=tmp_path, on_bad_sample="skip", verbose=False)
    assert len(ds) == 7 and ds.resized_masks == 5
    err = capsys.readouterr().err
    skipped = [line for line in err.splitlines() if "skipped" in line]
    assert len(skipped) == 1 and skipped[0].endswith(
        f"(2 of 9 samples skipped in total, {100 * 2 / 9:.1f}% of the data)"
    )
    assert "person_0.png" in skipped[0] and "person_1.png" in skipped[0]


def test_every_skip_report_ends_with_the_total_and_the_share():
    log = BadSampleLog("train", total=40)
    log.report([("a.jpg", "a.jpg: no label file"), ("b.jpg", "b.jpg: no label file")], "images without a mask")
    log.update([("c.jpg", "c.jpg: truncated")])
    assert (
        log.end_epoch()
        == "train: 1 bad samples skipped this epoch (3 of 40 samples skipped in total, 7.5% of the data)"
    )
