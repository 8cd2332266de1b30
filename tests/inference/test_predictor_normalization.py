"""A 4-band uint16 TIFF folder trains, its checkpoint keeps the statistics, and Predictor normalises as training did."""

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from segkit import Predictor, Trainer
from segkit.checkpoint import load_checkpoint, save_checkpoint
from segkit.config import config_from_dict
from segkit.datasets import build_dataset
from segkit.engine.reporting import denormalize
from segkit.models import build_model

# A 0.3M-parameter encoder: each checkpoint ~4 MB (resnet18: 136 MB with its Adam state).
SMALL = {"encoder": "tu-mobilenetv3_small_050", "encoder_weights": None, "decoder_channels": [16, 16, 8, 8, 8]}


def _bands(rng, h, w):
    base, spread = np.array([800.0, 3000.0, 12000.0, 150.0]), np.array([100.0, 900.0, 2500.0, 40.0])
    return rng.normal(base, spread, size=(h, w, 4)).clip(0, 65535).astype(np.uint16)


def _write_folder(root, n=4, seed=0, size=(48, 64)):
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    arrays = []
    for i in range(n):
        x = _bands(rng, *size)
        arrays.append(x)
        tifffile.imwrite(root / "images" / f"t{i}.tif", np.moveaxis(x, -1, 0), photometric="minisblack")
        # Classes follow band 2's level, so the masks are not noise.
        mask = np.digitize(x[..., 2], [11000, 13000]).astype(np.uint8)
        Image.fromarray(mask).save(root / "masks" / f"t{i}.png")
    return arrays


def _stats(arrays):
    pixels = np.concatenate([a.reshape(-1, 4).astype(np.float64) for a in arrays])
    return pixels.mean(0), pixels.std(0)


def _check_prediction(ckpt_path, new_file, new_array, mean, std):
    """Predictor's preprocessing is (x - mean) / std, and its classes are the argmax of the model on that tensor."""
    pred = Predictor.from_checkpoint(ckpt_path, device="cpu")
    x = pred.preprocess(new_array)
    expected = (new_array.astype(np.float64) - mean) / std
    assert x.shape == (1, 4) + new_array.shape[:2]
    np.testing.assert_allclose(x[0].permute(1, 2, 0).numpy(), expected, rtol=1e-5, atol=1e-4)
    got = pred.predict(new_file)
    assert got.shape == new_array.shape[:2]
    with torch.no_grad():
        by_hand = pred.model(torch.from_numpy(expected.astype(np.float32)).permute(2, 0, 1)[None]).argmax(1)[0]
    np.testing.assert_array_equal(got, by_hand.numpy())
    np.testing.assert_array_equal(pred.predict(new_array), got)  # an array of the file's bands: the same
    return pred


def test_a_4_band_folder_trains_and_predictor_normalises_a_new_file_as_training_did(tmp_path):
    arrays = _write_folder(tmp_path / "data", n=3)
    train = build_dataset("folder", root=tmp_path / "data")
    mean, std = _stats(arrays)  # computed here with numpy, independently of segkit
    model_cfg = {"name": "unet", "in_channels": 4, "num_classes": 3, **SMALL}
    model = build_model(**model_cfg)
    trainer = Trainer(
        model, "ce", train, train, epochs=2, batch_size=3, lr=1e-3, out_dir=tmp_path / "run", device="cpu",
        config={"model": model_cfg},
    )  # fmt: skip
    trainer.fit()
    ckpt = load_checkpoint(tmp_path / "run" / "best.pt")
    stored = ckpt["normalization"]
    np.testing.assert_allclose(stored["mean"], mean, rtol=1e-10)
    np.testing.assert_allclose(stored["std"], std, rtol=1e-10)
    assert stored["dtype"] == "uint16" and isinstance(stored["mean"], list)
    torch.load(tmp_path / "run" / "best.pt", weights_only=True)  # plain data only

    new = _bands(np.random.default_rng(99), 40, 56)  # a NEW file, not seen in training, another size
    tifffile.imwrite(tmp_path / "new.tif", np.moveaxis(new, -1, 0), photometric="minisblack")
    pred = _check_prediction(tmp_path / "run" / "best.pt", tmp_path / "new.tif", new, mean, std)
    with pytest.raises(ValueError, match="uint16"):
        pred.predict(new.astype(np.uint8))  # 8-bit pixels would be misread as 16-bit ones
    from segkit.cli import main

    # The command line too: the overlay shows the first three bands, the mask is the prediction.
    assert main(["predict", "--checkpoint", str(tmp_path / "run" / "best.pt"), str(tmp_path / "new.tif"),
                 "--out", str(tmp_path / "pred"), "--quiet"]) == 0  # fmt: skip
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "pred" / "new_mask.png")), pred.predict(new))
    assert Image.open(tmp_path / "pred" / "new_overlay.png").size == (56, 40)
    with pytest.raises(ValueError, match="trained on 4-channel images"):
        pred.predict(new[..., :3])


def test_a_model_given_by_name_takes_in_channels_from_the_data(tmp_path):
    arrays = _write_folder(tmp_path / "data", n=3)
    raw = {
        "model": {"name": "unet", **SMALL},
        "loss": {"name": "ce"},
        "data": {"name": "folder", "root": str(tmp_path / "data"), "train": {}, "val": {}},
        "train": {"epochs": 1, "batch_size": 3, "out_dir": str(tmp_path / "run"), "device": "cpu"},
    }
    trainer = Trainer.from_config(config_from_dict(raw))
    assert trainer.in_channels == 4 and trainer.config["model"]["in_channels"] == 4
    trainer.fit()
    mean, std = _stats(arrays)
    # The computed statistics are written into the resolved config: a rerun or `segkit evaluate` reuses them.
    np.testing.assert_allclose(trainer.config["data"]["mean"], mean, rtol=1e-10)
    rebuilt = build_dataset("folder", **config_from_dict(trainer.config).data.split_params("val"))
    assert rebuilt.normalization_source == "given" and rebuilt.normalization == trainer.normalization
    new = _bands(np.random.default_rng(7), 48, 64)
    tifffile.imwrite(tmp_path / "new.tif", new, photometric="minisblack", planarconfig="contig")
    _check_prediction(tmp_path / "run" / "last.pt", tmp_path / "new.tif", new, mean, std)

    # A Subset (random_split) of the dataset: metadata read through it; the model built by name gets 4 inputs.
    ds = build_dataset("folder", root=tmp_path / "data")
    subset = torch.utils.data.Subset(ds, [0, 2])
    spec = {"name": "unet", "num_classes": 3, **SMALL}
    by_name = Trainer(spec, "ce", subset, epochs=1, out_dir=tmp_path / "r2", device="cpu")
    first_conv = next(m for m in by_name.module.modules() if isinstance(m, torch.nn.Conv2d))
    assert first_conv.in_channels == 4 and by_name.normalization == ds.normalization


def test_validation_data_uses_the_training_statistics(tmp_path):
    _write_folder(tmp_path / "a", n=3, seed=1)
    _write_folder(tmp_path / "b", n=2, seed=2)
    train, val = build_dataset("folder", root=tmp_path / "a"), build_dataset("folder", root=tmp_path / "b")
    assert val.normalization != train.normalization  # each computed its own
    model = build_model("unet", in_channels=4, num_classes=3, **SMALL)
    trainer = Trainer(model, "ce", train, val, epochs=1, out_dir=tmp_path / "run", device="cpu")
    assert val.normalization != train.normalization  # the constructor only stores (issue 29)
    trainer.validate()  # fit or validate gives the validation data the training statistics
    assert val.normalization == train.normalization
    x = tifffile.imread(tmp_path / "b" / "images" / "t0.tif").transpose(1, 2, 0).astype(np.float64)
    expected = (x - np.asarray(train.normalization.mean)) / np.asarray(train.normalization.std)
    np.testing.assert_allclose(val[0]["image"].permute(1, 2, 0).numpy(), expected, rtol=1e-5, atol=1e-4)
    # Statistics given explicitly to the validation data are the user's call: kept, with a warning.
    given = build_dataset("folder", root=tmp_path / "b", mean=1000.0, std=100.0)
    with pytest.warns(UserWarning, match="differs from the training data's"):
        Trainer(model, "ce", train, given, epochs=1, out_dir=tmp_path / "run", device="cpu").validate()
    assert given.normalization.mean == (1000.0,) * 4


def test_rgb_uint8_training_stores_imagenet_and_predictor_output_is_unchanged(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "data" / "images").mkdir(parents=True)
    (tmp_path / "data" / "masks").mkdir()
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(
            tmp_path / "data" / "images" / f"{i}.png"
        )
        Image.fromarray(rng.integers(0, 3, (32, 32), dtype=np.uint8)).save(tmp_path / "data" / "masks" / f"{i}.png")
    model_cfg = {"name": "unet", "num_classes": 3, **SMALL}
    train = build_dataset("folder", root=tmp_path / "data")
    trainer = Trainer(
        build_model(**model_cfg), "ce", train, epochs=1, batch_size=3, out_dir=tmp_path / "run", device="cpu",
        config={"model": model_cfg},
    )  # fmt: skip
    trainer.fit()
    stored = load_checkpoint(tmp_path / "run" / "last.pt")["normalization"]
    np.testing.assert_allclose(stored["mean"], np.array([0.485, 0.456, 0.406]) * 255, rtol=1e-12)
    np.testing.assert_allclose(stored["std"], np.array([0.229, 0.224, 0.225]) * 255, rtol=1e-12)

    image = rng.integers(0, 256, (30, 44, 3), dtype=np.uint8)
    # The ImageNet formula segkit has always used, bit for bit.
    m, s = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    legacy = (torch.tensor(image, dtype=torch.float32).permute(2, 0, 1)[None] / 255.0 - m) / s
    pred = Predictor.from_checkpoint(tmp_path / "run" / "last.pt", device="cpu")
    assert torch.equal(pred.preprocess(image), legacy)
    with torch.no_grad():
        np.testing.assert_array_equal(pred.predict(image), pred.model(legacy).argmax(1)[0].numpy())

    # A checkpoint from before normalisation was stored: ImageNet, the same numbers.
    old = {k: v for k, v in load_checkpoint(tmp_path / "run" / "last.pt").items() if k != "normalization"}
    save_checkpoint(old, tmp_path / "old.pt")
    assert torch.equal(Predictor.from_checkpoint(tmp_path / "old.pt", device="cpu").preprocess(image), legacy)


def test_denormalize_shows_rgb_pixels_and_the_first_three_bands_stretched():
    rng = np.random.default_rng(3)
    from segkit.datasets.normalization import Normalization

    rgb = rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)
    x = torch.from_numpy(Normalization.imagenet().apply(rgb)).permute(2, 0, 1)
    np.testing.assert_array_equal(denormalize(x), rgb)
    bands = _bands(rng, 10, 12)
    norm = Normalization(tuple(bands.reshape(-1, 4).mean(0)), tuple(bands.reshape(-1, 4).std(0)), "uint16")
    shown = denormalize(torch.from_numpy(norm.apply(bands)).permute(2, 0, 1), norm.to_dict())
    first = bands[..., :3].astype(np.float64)
    low, high = first.min((0, 1)), first.max((0, 1))
    expected = (first - low) / (high - low) * 255
    assert shown.shape == (10, 12, 3) and shown.dtype == np.uint8
    assert np.abs(shown.astype(np.float64) - expected).max() <= 1.0
