"""Multi-band and 16-bit TIFF images: reading, per-channel statistics, normalisation of samples and presets."""

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from segkit.datasets import build_dataset
from segkit.datasets.bad_samples import BadSampleError
from segkit.datasets.dataset_stats import channel_stats
from segkit.datasets.decoding import image_info, image_size, read_image

SIZES = [(48, 64), (40, 56), (48, 64), (56, 40), (48, 64)]


def _bands(rng, h, w, c=4, dtype=np.uint16):
    """Bands with different levels and spreads, so per-channel statistics differ clearly."""
    base = np.array([800.0, 3000.0, 12000.0, 150.0])[:c]
    spread = np.array([100.0, 900.0, 2500.0, 40.0])[:c]
    x = rng.normal(base, spread, size=(h, w, c)).clip(0, 65535)
    return x.astype(dtype)


def write_tiff_folder(root, sizes=SIZES, seed=0, band_first=True):
    """images/*.tif (4-band uint16) + masks/*.png (0..2); returns the (H, W, 4) arrays written."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    arrays = []
    for i, (h, w) in enumerate(sizes):
        x = _bands(rng, h, w)
        arrays.append(x)
        if band_first:
            tifffile.imwrite(root / "images" / f"t{i}.tif", np.moveaxis(x, -1, 0), photometric="minisblack")
        else:
            tifffile.imwrite(root / "images" / f"t{i}.tif", x, photometric="minisblack", planarconfig="contig")
        Image.fromarray(rng.integers(0, 3, (h, w), dtype=np.uint8)).save(root / "masks" / f"t{i}.png")
    return arrays


def _numpy_stats(arrays):
    pixels = np.concatenate([a.reshape(-1, a.shape[-1]).astype(np.float64) for a in arrays])
    return pixels.mean(0), pixels.std(0)


@pytest.mark.parametrize(
    "layout,stored,kwargs",
    [
        ("contiguous samples (YXS)", lambda x: x, {"photometric": "minisblack", "planarconfig": "contig"}),
        ("a page per band", lambda x: np.moveaxis(x, -1, 0), {"photometric": "minisblack"}),
        ("separate planes (SYX)", lambda x: np.moveaxis(x, -1, 0), {"photometric": "rgb", "planarconfig": "separate"}),
        ("pages of rows", lambda x: x, {"photometric": "minisblack"}),  # tifffile's QYX for (H, W, C) data
    ],
)
def test_read_image_returns_bands_last_in_the_stored_dtype(tmp_path, layout, stored, kwargs):
    rng = np.random.default_rng(1)
    x = _bands(rng, 48, 64, c=3 if "SYX" in layout else 4)
    path = tmp_path / "a.tif"
    tifffile.imwrite(path, stored(x), **kwargs)
    got = read_image(path)
    assert got.dtype == np.uint16 and got.shape == x.shape, layout
    np.testing.assert_array_equal(got, x)
    assert image_info(path) == (48, 64, x.shape[2], np.dtype(np.uint16))
    assert image_size(path) == (48, 64)


def test_tiff_sample_axis_decides_over_the_shape_rule(tmp_path):
    # 16 rows of 48 pixels with 20 bands: the first axis is the shortest, but tifffile says YXS.
    x = np.random.default_rng(4).integers(0, 4000, (16, 48, 20), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "wide.tif", x, photometric="minisblack", planarconfig="contig")
    np.testing.assert_array_equal(read_image(tmp_path / "wide.tif"), x)
    assert image_info(tmp_path / "wide.tif") == (16, 48, 20, np.dtype(np.uint16))


def test_read_image_tiff_greyscale_float_and_other_types(tmp_path):
    rng = np.random.default_rng(2)
    grey = rng.integers(0, 60000, (30, 20), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "g.tiff", grey)
    assert read_image(tmp_path / "g.tiff").shape == (30, 20, 1)
    np.testing.assert_array_equal(read_image(tmp_path / "g.tiff")[..., 0], grey)
    floats = rng.normal(size=(5, 30, 20)).astype(np.float32)
    tifffile.imwrite(tmp_path / "f.tif", floats, photometric="minisblack")
    np.testing.assert_array_equal(read_image(tmp_path / "f.tif"), np.moveaxis(floats, 0, -1))
    signed = rng.integers(-2000, 2000, (30, 20, 6), dtype=np.int16)
    tifffile.imwrite(tmp_path / "s.tif", signed, photometric="minisblack", planarconfig="contig")
    got = read_image(tmp_path / "s.tif")
    assert got.dtype == np.float32  # int16 is read as float32, exactly
    np.testing.assert_array_equal(got, signed.astype(np.float32))
    assert image_info(tmp_path / "s.tif") == (30, 20, 6, np.dtype(np.float32))
    (tmp_path / "bad.tif").write_bytes(b"II*\x00 not really a tiff")
    with pytest.raises(BadSampleError, match="bad.tif.*TIFF"):
        read_image(tmp_path / "bad.tif")
    with pytest.raises(FileNotFoundError, match="missing.tif"):
        read_image(tmp_path / "missing.tif")


def test_channel_stats_equal_numpy_on_the_concatenated_pixels(tmp_path):
    arrays = write_tiff_folder(tmp_path)
    ds = build_dataset("folder", root=tmp_path, mean=1.0, std=1.0)  # given: nothing computed at construction
    mean, std = channel_stats(ds)
    ref_mean, ref_std = _numpy_stats(arrays)
    np.testing.assert_allclose(mean, ref_mean, rtol=1e-12)
    np.testing.assert_allclose(std, ref_std, rtol=1e-10)
    # max_images: evenly spread over the dataset (first and last included)
    mean2, std2 = channel_stats(ds, max_images=2)
    ref2 = _numpy_stats([arrays[0], arrays[-1]])
    np.testing.assert_allclose(mean2, ref2[0], rtol=1e-12)
    np.testing.assert_allclose(std2, ref2[1], rtol=1e-10)
    # a Subset reads its own images only
    sub_mean, _ = channel_stats(torch.utils.data.Subset(ds, [1, 3]))
    np.testing.assert_allclose(sub_mean, _numpy_stats([arrays[1], arrays[3]])[0], rtol=1e-12)


def test_channel_stats_names_an_image_with_other_bands(tmp_path):
    write_tiff_folder(tmp_path, sizes=SIZES[:3])
    odd = np.zeros((3, 40, 56), np.uint16)
    tifffile.imwrite(tmp_path / "images" / "t1.tif", odd, photometric="minisblack")
    ds = build_dataset("folder", root=tmp_path, mean=0.0, std=1.0)
    with pytest.raises(ValueError, match=r"t1\.tif: 3 channels, but .*t0\.tif has 4"):
        channel_stats(ds)


def test_folder_of_4_band_tiffs_computes_and_applies_its_statistics(tmp_path, capsys):
    arrays = write_tiff_folder(tmp_path)
    ds = build_dataset("folder", root=tmp_path)
    out = capsys.readouterr().out
    assert "4-channel uint16" in out and "computed from 5 of 5 images" in out
    assert ds.in_channels == 4 and ds.image_dtype == "uint16" and ds.normalization_source == "computed"
    mean, std = _numpy_stats(arrays)
    np.testing.assert_allclose(ds.normalization.mean, mean, rtol=1e-10)
    np.testing.assert_allclose(ds.normalization.std, std, rtol=1e-10)
    sample = ds[3]["image"]
    assert sample.shape == (4, 56, 40)
    expected = (arrays[3].astype(np.float64) - mean) / std
    np.testing.assert_allclose(sample.permute(1, 2, 0).numpy(), expected, rtol=1e-5, atol=1e-5)


def test_given_statistics_are_used_and_checked(tmp_path):
    arrays = write_tiff_folder(tmp_path, sizes=SIZES[:2])
    mean, std = [1000.0, 2000.0, 3000.0, 4000.0], [10.0, 20.0, 30.0, 40.0]
    ds = build_dataset("folder", root=tmp_path, mean=mean, std=std)
    assert ds.normalization_source == "given" and ds.normalization.to_dict()["dtype"] == "uint16"
    expected = (arrays[0].astype(np.float64) - mean) / std
    np.testing.assert_allclose(ds[0]["image"].permute(1, 2, 0).numpy(), expected, rtol=1e-5, atol=1e-4)
    with pytest.raises(ValueError, match="mean: 3 values for 4-channel images"):
        build_dataset("folder", root=tmp_path, mean=[1.0, 2.0, 3.0], std=std)
    with pytest.raises(ValueError, match="give both mean= and std="):
        build_dataset("folder", root=tmp_path, mean=mean)
    with pytest.raises(ValueError, match="every std > 0"):
        build_dataset("folder", root=tmp_path, mean=mean, std=[1.0, 0.0, 1.0, 1.0])


def test_yaml_presets_take_the_dataset_statistics_and_skip_colour_jitter(tmp_path, capsys):
    arrays = write_tiff_folder(tmp_path, band_first=False)
    mean, std = _numpy_stats(arrays)
    ds = build_dataset("folder", root=tmp_path, transforms={"preset": "eval"})
    np.testing.assert_allclose(ds[0]["image"].permute(1, 2, 0).numpy(), (arrays[0] - mean) / std, rtol=1e-4, atol=1e-4)
    capsys.readouterr()
    train = build_dataset("folder", root=tmp_path, transforms={"crop_size": 32, "color_jitter": 0.3})
    assert "color_jitter skipped" in capsys.readouterr().out
    names = [type(t).__name__ for t in train.transforms.transforms]
    assert "ColorJitter" not in names and names[-1] == "Normalize"
    image = train[1]["image"]
    # Normalised, not raw 16-bit values (hundreds and more). Not the mean: the random crop may land in the
    # zero padding of a smaller image, which normalises to about -8 (a flaky check before).
    assert image.shape == (4, 32, 32) and float(image.abs().max()) < 50
    with pytest.raises(ValueError, match="conflict with the dataset's normalisation"):
        build_dataset("folder", root=tmp_path, transforms={"preset": "eval", "mean": [0.5] * 4, "std": [0.2] * 4})


def _rgb_folder(root, n=3, seed=0):
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    images = []
    for i in range(n):
        x = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
        images.append(x)
        Image.fromarray(x).save(root / "images" / f"r{i}.png")
        Image.fromarray(rng.integers(0, 3, (24, 32), dtype=np.uint8)).save(root / "masks" / f"r{i}.png")
    return images


def test_rgb_uint8_keeps_imagenet_bit_for_bit(tmp_path):
    images = _rgb_folder(tmp_path)
    ds = build_dataset("folder", root=tmp_path)
    assert ds.in_channels == 3 and ds.normalization_source == "default"
    assert ds.normalization.dtype == "uint8"
    np.testing.assert_allclose(ds.normalization.mean, [123.675, 116.28, 103.53], rtol=1e-12)
    np.testing.assert_allclose(ds.normalization.std, [58.395, 57.12, 57.375], rtol=1e-12)
    m = np.asarray([0.485, 0.456, 0.406], np.float32)
    s = np.asarray([0.229, 0.224, 0.225], np.float32)
    legacy = (images[1].astype(np.float32) / 255.0 - m) / s
    assert torch.equal(ds[1]["image"], torch.from_numpy(legacy).permute(2, 0, 1))
    # a YAML eval preset: albumentations' Normalize with ImageNet in [0, 1] units, as before
    import albumentations as A

    preset = build_dataset("folder", root=tmp_path, transforms={"preset": "eval"})
    before = A.Compose([A.Normalize(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))])(image=images[1])["image"]
    assert torch.equal(preset[1]["image"], torch.from_numpy(before).permute(2, 0, 1))
