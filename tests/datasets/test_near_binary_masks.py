"""0/255 masks with a few stray values are binary (strays named, ignored); VOC-style 255 boundaries stay ignore."""

import warnings

import numpy as np
import pytest
from PIL import Image

from segkit.datasets import build_dataset
from segkit.datasets.mask_encoding import MaskEncodingWarning, detect_mask_encoding
from segkit.datasets.voc import voc_palette

H, W = 48, 64


def _disc(i):
    yy, xx = np.mgrid[:H, :W]
    return (yy - 20 - i) ** 2 + (xx - 30 - i) ** 2 < 14**2


def _write(root, masks, mode=None):
    """Random RGB images and the given masks in ``root/images`` + ``root/masks`` (PNG; ``mode="P"``: VOC palette)."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir(parents=True)
    for i, mask in enumerate(masks):
        Image.fromarray(rng.integers(0, 256, (H, W, 3), dtype=np.uint8)).save(root / "images" / f"m{i}.png")
        im = Image.fromarray(mask.astype(np.uint8), mode="P" if mode == "P" else None)
        if mode == "P":
            im.putpalette(voc_palette(256).reshape(-1).tolist())
        im.save(root / "masks" / f"m{i}.png")
    return root


def _binary_masks(n=9):
    return [np.where(_disc(i), 255, 0).astype(np.uint8) for i in range(n)]


def _build(root, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = build_dataset("folder", root=root, verbose=False, **kwargs)
    return ds, [str(w.message) for w in caught if issubclass(w.category, MaskEncodingWarning)]


def test_one_stray_pixel_in_nine_0_255_masks_is_binary_and_named(tmp_path):
    masks = _binary_masks()
    masks[4][0, 0] = 1  # one pixel of one file, outside the disc
    root = _write(tmp_path / "data", masks)
    ds, warned = _build(root)
    assert ds.encoding.kind == "binary" and ds.num_classes == 2
    assert len(warned) == 1
    assert str(root / "masks" / "m4.png") in warned[0] and "1 pixel of value 1" in warned[0]
    assert "m0.png" not in warned[0]  # only the file holding the stray
    # Sample 0's foreground (the disc, 255 stored) is class 1, none of it ignored; background is class 0.
    out = ds[0]["mask"].numpy()
    disc = _disc(0)
    assert (out[disc] == 1).all() and (out[~disc] == 0).all() and disc.sum() > 500
    stray = ds[4]["mask"].numpy()
    assert stray[0, 0] == 255 and (stray[_disc(4)] == 1).all()  # the stray pixel is ignore_index, not foreground
    assert "stray" in ds.encoding.summary() and ds.encoding.warnings == [warned[0].split(": ", 1)[1]]


def test_confirming_the_binary_decision_silences_the_warning(tmp_path):
    masks = _binary_masks()
    masks[4][0, 0] = 1
    root = _write(tmp_path / "data", masks)
    ds, warned = _build(root, mask_values=[0, 255], unlisted="ignore")
    assert warned == [] and (ds[0]["mask"].numpy()[_disc(0)] == 1).all() and ds[4]["mask"][0, 0] == 255


@pytest.mark.parametrize(
    ("radius", "strays"),
    [
        (14, 3),  # 3 of 27648 pixels, ~0.05% of the foreground: strays
        (14, 27),  # 0.098% of the pixels: still strays
        (14, 28),  # 0.101% of the pixels: a class
        (2, 8),  # 9 discs of 9 pixels: 8 pixels are under a tenth of the foreground: strays
        (2, 9),  # 9 pixels are more than a tenth of that small foreground: a class
    ],
)
def test_the_near_binary_rule_at_its_thresholds(tmp_path, radius, strays):
    yy, xx = np.mgrid[:H, :W]
    masks = [np.where((yy - 20) ** 2 + (xx - 30 - i) ** 2 < radius**2, 255, 0).astype(np.uint8) for i in range(9)]
    total, foreground = len(masks) * H * W, sum(int((m == 255).sum()) for m in masks)
    assert radius != 2 or foreground == 81
    # The rule, computed here independently: strays <= 0.1% of the pixels and <= 10% of the 255 pixels.
    binary = strays <= 1e-3 * total and strays <= 0.1 * foreground
    masks[2][H - 1, :strays] = 1  # in the background, along the bottom row
    root = _write(tmp_path / "data", masks)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        enc = detect_mask_encoding(sorted((root / "masks").iterdir()))
    warned = [str(w.message) for w in caught if issubclass(w.category, MaskEncodingWarning)]
    assert len(warned) == 1 and warned[0].endswith(enc.warnings[0])
    if binary:
        assert enc.kind == "binary" and f"m2.png: {strays} pixels of value 1" in warned[0]
    else:  # a class 1 with that many pixels: index masks, 255 = ignore, but said when 255 outnumbers the classes
        assert enc.kind == "index" and enc.num_classes == 2
        assert "holds" in warned[0] and "mask_values=[0, 255]" in warned[0]


def test_voc_palette_masks_with_255_boundaries_stay_index_with_ignore(tmp_path):
    # VOC's 255 is a thin boundary around each object (a 2x2 object: its boundary outnumbers it 3 to 1).
    masks = []
    for i in range(6):
        m = np.zeros((H, W), np.uint8)
        for k, (y, x, s) in enumerate([(4, 4, 2), (20, 30, 14), (35, 5, 8), (8, 50, 6)]):
            m[y - 1 : y + s + 1, x - 1 : x + s + 1] = 255
            m[y : y + s, x : x + s] = 1 + (i + k) % 20
        masks.append(m)
    root = _write(tmp_path / "voc", masks, mode="P")
    ds, warned = _build(root)
    assert warned == [] and ds.encoding.kind == "palette" and ds.ignore_index == 255
    raw = masks[0]
    out = ds[0]["mask"].numpy()
    assert (out[raw == 255] == 255).all() and (out[raw != 255] == raw[raw != 255]).all()


def test_a_0_1_255_set_with_a_common_class_1_stays_index_with_ignore(tmp_path):
    masks = []
    for i in range(9):
        m = np.zeros((H, W), np.uint8)
        m[_disc(i)] = 1
        m[:4, :] = 255  # an ignored strip (unlabelled) in every file
        masks.append(m)
    root = _write(tmp_path / "data", masks)
    ds, warned = _build(root)
    assert warned == [] and ds.encoding.kind == "index" and ds.num_classes == 2
    out = ds[0]["mask"].numpy()
    assert (out[:4] == 255).all() and (out[4:][_disc(0)[4:]] == 1).all()
