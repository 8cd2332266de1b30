"""Augmentation from a YAML mapping (``transforms: {crop_size: ...}``) and the shipped CamVid recipes."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from segkit.config import load_config
from segkit.datasets import build_dataset
from segkit.datasets.transforms import build_transforms
from segkit.losses import build_loss
from segkit.models import build_model
from tests.datasets.conftest import H, W

CONFIGS = sorted((Path(__file__).parents[2] / "configs").glob("camvid*.yaml"))
MEAN, STD = np.asarray((0.485, 0.456, 0.406)), np.asarray((0.229, 0.224, 0.225))


def test_mapping_spec_builds_the_train_preset_identity_crop_equals_raw_files(tmp_path, layouts):
    names = layouts.write_camvid_segnet(tmp_path)
    # Scale 1, a crop the size of the frame, no flip, no jitter: the preset must leave the pixels alone.
    spec = {"crop_size": [H, W], "scale": [1.0, 1.0], "hflip": 0.0, "color_jitter": 0.0}
    ds = build_dataset("camvid", root=tmp_path, split="train", transforms=spec)
    first = names[-1]  # train.txt lists the files in reverse order
    raw = np.asarray(Image.open(tmp_path / "train" / first).convert("RGB")).astype(np.float64)
    label = np.asarray(Image.open(tmp_path / "trainannot" / first)).astype(np.int64)
    sample = ds[0]
    expected = ((raw / 255.0 - MEAN) / STD).transpose(2, 0, 1)
    np.testing.assert_allclose(sample["image"].numpy(), expected, atol=1e-5)
    assert torch.equal(sample["mask"], torch.from_numpy(np.where(label == 11, 255, label)))


def test_mapping_spec_crops_and_pads_with_ignore(tmp_path, layouts):
    layouts.write_camvid_segnet(tmp_path)
    ds = build_dataset(
        "camvid", root=tmp_path, split="train", transforms={"crop_size": [2 * H, 2 * W], "scale": [1, 1]}
    )
    sample = ds[0]
    assert sample["image"].shape == (3, 2 * H, 2 * W) and sample["mask"].shape == (2 * H, 2 * W)
    # The frame is 4x smaller than the crop: at least 3/4 of the mask is padding, marked ignore.
    assert int((sample["mask"] == 255).sum()) >= 3 * H * W


def test_spec_errors_name_the_option():
    with pytest.raises(ValueError, match="crop_sise"):
        build_transforms({"crop_sise": 64})
    with pytest.raises(ValueError, match="preset"):
        build_transforms({"preset": "heavy"})
    assert build_transforms(None) is None
    fn = lambda **kw: kw  # noqa: E731
    assert build_transforms(fn) is fn


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_camvid_configs_build_on_a_real_layout(tmp_path, layouts, path):
    cfg = load_config(path)  # the placeholder root is never touched at load time
    assert not Path(cfg.data.params["root"]).exists()
    layouts.write_camvid_segnet(tmp_path, "train")
    layouts.write_camvid_segnet(tmp_path, "val")
    cfg = load_config(path, [f"data.root={tmp_path}"])
    train = build_dataset(cfg.data.name, **cfg.data.split_params("train"))
    val = build_dataset(cfg.data.name, **cfg.data.split_params("val"))
    crop = tuple(cfg.data.train["transforms"]["crop_size"])
    assert tuple(train[0]["image"].shape[1:]) == crop
    assert tuple(val[0]["image"].shape[1:]) == (H, W)  # evaluation at full resolution
    if cfg.loss is None:  # the model's own loss (DDRNet: deep-supervised OHEM), built for the data's classes
        model = build_model(cfg.model.name, num_classes=train.num_classes, **cfg.model.params)
        assert train.num_classes == 11 and build_loss(model.default_loss).takes_outputs
        return
    loss = build_loss(cfg.loss.name, **cfg.loss.params)
    assert loss.weight.numel() == train.num_classes == 11
