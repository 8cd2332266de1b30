"""folder: each mask encoding is recognised (kind, num_classes, mapped values) and each bad one refused clearly."""

from __future__ import annotations

import re

import cv2
import numpy as np
import pytest
from PIL import Image

from segkit.datasets import BadSampleError, build_dataset
from segkit.datasets.mask_encoding import MaskEncodingError, detect_mask_encoding

SIZES = [(96, 128), (80, 100), (120, 90)]  # (H, W): photos of varied sizes


def _disc(h: int, w: int, fg: int = 255, bg: int = 0) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    return np.where((yy - h / 2) ** 2 + (xx - w / 2) ** 2 < (min(h, w) / 3) ** 2, fg, bg).astype(np.uint8)


def _write(root, masks, ext=".png", save=None, seed=0):
    """images/p{i}.jpg (photos) + masks/p{i}{ext}; ``save(path, array)`` writes a mask (default PIL)."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    paths = []
    for i, mask in enumerate(masks):
        h, w = mask.shape[:2]
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / "images" / f"p{i}.jpg", quality=90)
        path = root / "masks" / f"p{i}{ext}"
        (save or (lambda p, a: Image.fromarray(a).save(p)))(path, mask)
        paths.append(path)
    return paths


def _stored(path) -> np.ndarray:
    """The file's values as PIL reads them (independent of segkit's reader)."""
    with Image.open(path) as im:
        return np.asarray(im)


def test_binary_0_255_masks_are_two_classes_and_said_once(tmp_path, capsys):
    paths = _write(tmp_path, [_disc(h, w) for h, w in SIZES])
    ds = build_dataset("folder", root=tmp_path)
    assert ds.encoding.kind == "binary" and ds.num_classes == 2 and ds.ignore_index == 255
    assert ds.class_names == ("background", "foreground")
    np.testing.assert_array_equal(ds.load_raw(1)[1], (_stored(paths[1]) == 255).astype(np.uint8))
    assert ds[2]["mask"].shape == SIZES[2]
    out = capsys.readouterr().out
    assert out.count("binary masks stored as 0/255: 2 classes, 255 -> class 1") == 1
    fg = sum(int((_stored(p) == 255).sum()) for p in paths) / sum(h * w for h, w in SIZES)
    np.testing.assert_allclose(ds.class_pixel_share, [1 - fg, fg])
    assert "read 3 of 3 label files" in out and f"{100 * fg:.2f}%" in out


def test_zero_one_masks_are_index_masks_of_two_classes(tmp_path):
    paths = _write(tmp_path, [_disc(h, w, fg=1) for h, w in SIZES])
    ds = build_dataset("folder", root=tmp_path, verbose=False)
    assert ds.encoding.kind == "index" and ds.num_classes == 2
    np.testing.assert_array_equal(ds.load_raw(0)[1], _stored(paths[0]))


def test_explicit_mask_values_map_in_class_order_and_unlisted_values(tmp_path):
    rng = np.random.default_rng(3)
    masks = [rng.choice(np.array([0, 85, 170], np.uint8), size=s) for s in SIZES]
    masks[0][:3] = 255  # a border of ignore_index, not listed: stays ignored
    paths = _write(tmp_path, masks)
    ds = build_dataset("folder", root=tmp_path, mask_values=[170, 0, 85], verbose=False)
    assert ds.encoding.kind == "values" and ds.num_classes == 3
    stored = _stored(paths[0])
    want = np.select([stored == 170, stored == 0, stored == 85], [0, 1, 2], 255)
    np.testing.assert_array_equal(ds.load_raw(0)[1], want)
    # A value not listed: the error names the file and the value; unlisted="ignore" maps it to ignore_index.
    bad = masks[1].copy()
    bad[5, 5] = 40
    Image.fromarray(bad).save(paths[1])
    with pytest.raises(MaskEncodingError) as e:
        build_dataset("folder", root=tmp_path, mask_values=[0, 85, 170], verbose=False)
    assert str(paths[1]) in str(e.value) and "[40]" in str(e.value) and "unlisted='ignore'" in str(e.value)
    ds = build_dataset("folder", root=tmp_path, mask_values=[0, 85, 170], unlisted="ignore", verbose=False)
    assert ds.load_raw(1)[1][5, 5] == 255


def test_gapped_grey_values_are_refused_with_the_values_and_the_remedy(tmp_path):
    rng = np.random.default_rng(4)
    _write(tmp_path, [rng.choice(np.array([0, 85, 170], np.uint8), size=s) for s in SIZES])
    with pytest.raises(MaskEncodingError) as e:
        build_dataset("folder", root=tmp_path)
    text = str(e.value)
    assert str(tmp_path / "masks") in text and "[0, 85, 170]" in text and "171 classes" in text
    assert "mask_values=[0, 85, 170]" in text and "num_classes=171" in text


def test_palette_pngs_keep_their_indices(tmp_path):
    rng = np.random.default_rng(5)
    colours = rng.integers(0, 256, (256, 3), dtype=np.uint8).reshape(-1).tolist()

    def save_p(path, array):
        im = Image.fromarray(array, mode="P")
        im.putpalette(colours)
        im.save(path)

    masks = [rng.integers(0, 5, size=s).astype(np.uint8) for s in SIZES]
    masks[2][0] = 255
    paths = _write(tmp_path, masks, save=save_p)
    assert Image.open(paths[0]).mode == "P"
    ds = build_dataset("folder", root=tmp_path, verbose=False)
    assert ds.encoding.kind == "palette" and ds.num_classes == 5
    np.testing.assert_array_equal(ds.load_raw(2)[1], _stored(paths[2]))


def test_rgb_colour_masks_without_palette_list_the_colours_and_a_palette_block(tmp_path):
    table = np.array([[0, 0, 0], [220, 20, 60], [0, 128, 0]], np.uint8)
    rng = np.random.default_rng(6)
    codes = [rng.choice(3, size=s, p=[0.6, 0.3, 0.1]) for s in SIZES]
    paths = _write(tmp_path, [table[c] for c in codes])
    with pytest.raises(MaskEncodingError) as e:
        build_dataset("folder", root=tmp_path)
    text = str(e.value)
    total = sum(c.size for c in codes)
    for k, colour in enumerate(table):
        share = sum(int((c == k).sum()) for c in codes) / total
        assert f"{tuple(int(x) for x in colour)} {100 * share:.1f}%" in text
        assert f"- [{colour[0]}, {colour[1]}, {colour[2]}]" in text
    assert str(paths[0]) in text and "palette:" in text and "no palette=" in text
    ds = build_dataset("folder", root=tmp_path, palette=table.tolist(), verbose=False)
    assert ds.encoding.kind == "rgb" and ds.num_classes == 3
    np.testing.assert_array_equal(ds.load_raw(1)[1], codes[1])


def test_a_palette_that_matches_no_colour_is_refused(tmp_path):
    table = np.array([[0, 0, 0], [220, 20, 60]], np.uint8)
    rng = np.random.default_rng(10)
    _write(tmp_path, [table[rng.integers(0, 2, size=s)] for s in SIZES])
    with pytest.raises(MaskEncodingError) as e:
        build_dataset("folder", root=tmp_path, palette=[[1, 1, 1], [2, 2, 2]])
    text = str(e.value)
    assert str(tmp_path / "masks") in text and "every pixel" in text and "maps to ignore_index" in text
    assert "palette=" in text
    with pytest.raises(MaskEncodingError, match="palette= has 2 colours but num_classes=3"):
        build_dataset("folder", root=tmp_path, palette=table.tolist(), num_classes=3)


def test_greyscale_saved_as_rgb_takes_one_channel_and_says_so(tmp_path, capsys):
    paths = _write(tmp_path, [np.repeat(_disc(h, w)[..., None], 3, axis=2) for h, w in SIZES])
    assert Image.open(paths[0]).mode == "RGB"
    ds = build_dataset("folder", root=tmp_path)
    assert ds.encoding.kind == "binary" and ds.encoding.grey_rgb and ds.num_classes == 2
    np.testing.assert_array_equal(ds.load_raw(0)[1], (_stored(paths[0])[..., 0] == 255).astype(np.uint8))
    assert "greyscale saved as RGB: channel 0 used" in capsys.readouterr().out


def test_sixteen_bit_pngs(tmp_path):
    rng = np.random.default_rng(7)
    masks = [rng.integers(0, 3, size=s).astype(np.uint16) for s in SIZES]
    paths = _write(tmp_path, masks, save=lambda p, a: cv2.imwrite(str(p), a))
    assert Image.open(paths[0]).mode.startswith("I")
    ds = build_dataset("folder", root=tmp_path, verbose=False)
    assert ds.encoding.kind == "index16" and ds.num_classes == 3
    np.testing.assert_array_equal(ds.load_raw(0)[1], _stored(paths[0]))
    # Values above 255 only through mask_values.
    wide = [np.choose(m, [0, 1000, 40000]).astype(np.uint16) for m in masks]
    root = tmp_path / "wide"
    paths = _write(root, wide, save=lambda p, a: cv2.imwrite(str(p), a))
    with pytest.raises(MaskEncodingError) as e:
        build_dataset("folder", root=root)
    assert str(root / "masks") in str(e.value) and "mask_values=[0, 1000, 40000]" in str(e.value)
    ds = build_dataset("folder", root=root, mask_values=[0, 1000, 40000], verbose=False)
    assert ds.encoding.kind == "values"
    stored = _stored(paths[2]).astype(np.int64)
    np.testing.assert_array_equal(ds.load_raw(2)[1], np.select([stored == 1000, stored == 40000], [1, 2], 0))


def test_jpeg_masks_are_refused_unless_mask_values_then_snapped(tmp_path):
    paths = _write(
        tmp_path, [_disc(h, w) for h, w in SIZES], ext=".jpg", save=lambda p, a: Image.fromarray(a).save(p, quality=75)
    )
    assert len(np.unique(_stored(paths[0]))) > 2  # compression did invent values
    with pytest.raises(MaskEncodingError) as e:
        build_dataset("folder", root=tmp_path)
    text = str(e.value)
    assert str(paths[0]) in text and "JPEG" in text and "lossy" in text and "mask_values=" in text and "PNG" in text
    ds = build_dataset("folder", root=tmp_path, mask_values=[0, 255], verbose=False)
    assert ds.encoding.kind == "snapped" and ds.num_classes == 2
    stored = cv2.imread(str(paths[0]), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(ds.load_raw(0)[1], (stored >= 128).astype(np.uint8))


def test_colour_jpeg_masks_snap_to_the_nearest_palette_colour(tmp_path):
    table = np.array([[0, 0, 0], [250, 250, 250], [0, 0, 255]], np.uint8)
    rng = np.random.default_rng(11)
    codes = []
    for h, w in SIZES:
        code = np.zeros((h, w), np.int64)
        code[h // 4 : h // 2, w // 4 :] = 1
        code[h // 2 :, : w // 2] = 2
        codes.append(code)
    paths = _write(tmp_path, [table[c] for c in codes], ext=".jpg", seed=int(rng.integers(9)))
    with pytest.raises(MaskEncodingError, match="a JPEG mask"):
        build_dataset("folder", root=tmp_path)
    ds = build_dataset("folder", root=tmp_path, palette=table.tolist(), verbose=False)
    assert ds.encoding.kind == "snapped" and ds.num_classes == 3
    stored = cv2.imread(str(paths[1]), cv2.IMREAD_COLOR)[..., ::-1].astype(np.int64)  # the decoder segkit uses
    nearest = ((stored[..., None, :] - table.astype(np.int64)) ** 2).sum(-1).argmin(-1)
    np.testing.assert_array_equal(ds.load_raw(1)[1], nearest)
    assert (nearest == codes[1]).mean() > 0.95


def test_one_jpeg_among_png_masks_is_found(tmp_path):
    paths = _write(tmp_path, [_disc(h, w) for h, w in SIZES])
    Image.fromarray(_disc(*SIZES[2])).save(paths[2].with_suffix(".jpg"), quality=80)
    paths[2].unlink()
    with pytest.raises(MaskEncodingError) as e:
        build_dataset("folder", root=tmp_path)
    assert str(paths[2].with_suffix(".jpg")) in str(e.value) and "lossy" in str(e.value)


def test_jpeg_is_recognised_by_its_signature_not_its_suffix(tmp_path):
    paths = _write(
        tmp_path, [_disc(h, w) for h, w in SIZES], save=lambda p, a: Image.fromarray(a).save(p, format="JPEG")
    )
    assert paths[0].suffix == ".png"
    with pytest.raises(MaskEncodingError, match="a JPEG mask"):
        build_dataset("folder", root=tmp_path)


@pytest.mark.parametrize(
    "masks,kwargs,reason,remedy",
    [
        ([np.zeros(s, np.uint8) for s in SIZES], {}, "hold only the value 0", "not blank"),
        ([np.full(s, 255, np.uint8) for s in SIZES], {}, "every pixel", "mask_values=[0, 255]"),
        ([_disc(*s) for s in SIZES], {"num_classes": 3}, "every labelled pixel", "mask_values=[0, 255]"),
        ([_disc(*s, fg=1) for s in SIZES], {"num_classes": 1}, "num_classes=1", "at least 2 classes"),
    ],
    ids=["all_zero", "all_ignored", "binary_read_as_3_classes", "one_class_given"],
)
def test_degenerate_setups_are_refused_before_training(tmp_path, masks, kwargs, reason, remedy):
    _write(tmp_path, masks)
    with pytest.raises(MaskEncodingError) as e:
        build_dataset("folder", root=tmp_path, **kwargs)
    text = str(e.value)
    assert str(tmp_path / "masks") in text and reason in text and remedy in text


def test_a_label_at_or_above_num_classes_names_the_file_and_the_value(tmp_path):
    rng = np.random.default_rng(8)
    masks = [rng.integers(0, 3, size=s).astype(np.uint8) for s in SIZES]
    masks[1][10, 10] = 7
    paths = _write(tmp_path, masks)
    with pytest.raises(MaskEncodingError) as e:
        build_dataset("folder", root=tmp_path, num_classes=3)
    text = str(e.value)
    assert str(paths[1]) in text and "[7]" in text and "[0, 3)" in text and "num_classes=8" in text
    # check_files=False leaves it to loading, which names the file too.
    ds = build_dataset("folder", root=tmp_path, num_classes=3, check_files=False, verbose=False)
    assert "1 label files read do not decode this way" in ds.encoding.summary()
    with pytest.raises(BadSampleError, match=re.escape(str(paths[1]))):
        ds[1]


def test_detection_samples_evenly_and_reads_all_only_when_needed(tmp_path):
    rng = np.random.default_rng(9)
    masks = [_disc(32, 40) for _ in range(30)]
    paths = _write(tmp_path / "bin", masks)
    enc = detect_mask_encoding(paths, sample=5)
    assert enc.kind == "binary" and enc.files_read == 5 and enc.files_total == 30
    index = [rng.integers(0, 3, size=(16, 16)).astype(np.uint8) for _ in range(30)]
    index[17][0, 0] = 3  # only in a file the sample does not hold: inferring K must read every file
    paths = _write(tmp_path / "idx", index)
    enc = detect_mask_encoding(paths, sample=5)
    assert enc.kind == "index" and enc.num_classes == 4 and enc.files_read == 30
    enc = detect_mask_encoding(paths, num_classes=4, sample=5)
    assert enc.files_read == 5


def test_summary_is_one_short_block(tmp_path):
    paths = _write(tmp_path, [_disc(h, w) for h, w in SIZES])
    text = detect_mask_encoding(paths).summary(["background", "leaf"], name="folder")
    lines = text.splitlines()
    assert lines[0] == "folder: binary masks stored as 0/255: 2 classes, 255 -> class 1"
    assert len(lines) <= 6 + 2 and any("leaf" in line for line in lines)
