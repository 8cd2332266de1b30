"""Every mask pixel a transform creates (padding, rotation corners, scaled-down borders) is the dataset's ignore_index."""

import inspect
import warnings

import albumentations as A
import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from segkit.datasets import build_dataset
from segkit.datasets.transforms import PRESETS, MaskFillWarning, mask_fill_problems, train_transforms
from tests.engine._nets import TinyNet

H, W, CROP = 24, 32, 48


def _folder(root, n=3, seed=0):
    """Index masks 0..2 with no ignored pixel, so every ignored pixel after a transform is one it created."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir(parents=True)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (H, W, 3), dtype=np.uint8)).save(root / "images" / f"s{i}.png")
        mask = rng.integers(0, 3, (H, W)).astype(np.uint8)
        Image.fromarray(mask).save(root / "masks" / f"s{i}.png")
    return root


def _preset_options(name):
    """A crop larger than the images, no random rescale or flip: padding is the only change."""
    wanted = {"crop_size": CROP, "scale": [1.0, 1.0], "hflip": 0.0}
    return {k: v for k, v in wanted.items() if k in inspect.signature(PRESETS[name]).parameters}


@pytest.mark.parametrize("ignore_index", [254, 9])
@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_pads_masks_with_the_datasets_ignore_index(tmp_path, preset, ignore_index):
    root = _folder(tmp_path / "data")
    spec = {"preset": preset, **_preset_options(preset)}
    ds = build_dataset("folder", root=root, ignore_index=ignore_index, transforms=spec, verbose=False)
    for i in range(len(ds)):
        raw = np.asarray(Image.open(root / "masks" / f"s{i}.png"))
        out = ds[i]["mask"].numpy()
        # The labelled pixels are exactly the file's (none lost, none invented); every other pixel is ignore_index.
        labelled = out[out != ignore_index]
        assert np.bincount(labelled, minlength=3).tolist() == np.bincount(raw.reshape(-1), minlength=3).tolist()
        assert set(np.unique(out).tolist()) <= {0, 1, 2, ignore_index}
        padded = out.size - raw.size
        assert int((out == ignore_index).sum()) == padded
        if "crop_size" in spec:
            assert out.shape == (CROP, CROP) and padded == CROP * CROP - H * W


def test_a_crop_preset_with_ignore_index_254_trains_a_step_on_the_cpu(tmp_path):
    from segkit import Trainer

    root = _folder(tmp_path / "data", n=4)
    train = build_dataset("folder", root=root, ignore_index=254, transforms={"crop_size": CROP}, verbose=False)
    torch.manual_seed(0)
    trainer = Trainer(TinyNet(num_classes=3), "ce", train, epochs=1, batch_size=2, out_dir=tmp_path / "run",
                      device="cpu", log_every=1)  # fmt: skip
    metrics = trainer.fit()
    assert np.isfinite(metrics["train/loss"]) and metrics["train/loss"] > 0


def test_scaled_down_images_are_padded_back_with_ignore_index(tmp_path):
    root = _folder(tmp_path / "data")
    spec = {"crop_size": [H, W], "scale": [0.5, 0.5], "hflip": 0.0}
    out = build_dataset("folder", root=root, ignore_index=254, transforms=spec, verbose=False)[0]["mask"].numpy()
    # Half the size each way, padded back: three quarters of the crop is new, all of it ignore_index.
    assert out.shape == (H, W) and int((out == 254).sum()) == H * W - (H // 2) * (W // 2)
    assert set(np.unique(out[out != 254]).tolist()) <= {0, 1, 2}


@pytest.mark.parametrize("ignore_index", [254, 9])
def test_rotation_corners_are_ignore_index(ignore_index):
    # The image's fill (0) marks the pixels the rotation created: the mask must be ignore_index exactly there.
    t = train_transforms((H, W), scale=(1.0, 1.0), hflip=0.0, color_jitter=0.0, ignore_index=ignore_index,
                         mean=(0, 0, 0), std=(1, 1, 1), max_pixel_value=1.0, rotate=45)  # fmt: skip
    image, mask = np.full((H, W, 3), 200, np.uint8), np.ones((H, W), np.uint8)
    created_total = 0
    for seed in range(6):
        np.random.seed(seed)
        t.set_random_seed(seed)
        out = t(image=image, mask=mask)
        img, m = out["image"], out["mask"]
        created, inside = (img == 0).all(-1), (img == 200).all(-1)
        assert (m[created] == ignore_index).all() and (m[inside] == 1).all()
        assert set(np.unique(m).tolist()) <= {1, ignore_index}
        created_total += int(created.sum())
    assert created_total > 0.05 * 6 * H * W  # the rotations did create corners


@pytest.mark.parametrize(
    ("step", "reported"),
    [
        (A.PadIfNeeded(CROP, CROP), True),  # albumentations' default fill_mask is 0
        (A.PadIfNeeded(CROP, CROP, fill_mask=254), False),
        (A.OneOf([A.Rotate(20)], p=1.0), True),  # looked through
        (A.Affine(rotate=20, fill_mask=255), True),
        (A.Affine(rotate=20, fill_mask=254), False),
        (A.Rotate(20, border_mode=cv2.BORDER_REFLECT_101), False),  # copies labels with the image
        (A.RandomCrop(16, 16), False),  # never pads
        (A.RandomCrop(CROP, CROP, pad_if_needed=True), True),
        (A.CoarseDropout(fill_mask=0), False),  # labels what it erases, on purpose
        (A.HorizontalFlip(), False),
    ],
)
def test_a_users_pipeline_that_fills_masks_with_another_value_is_named(tmp_path, step, reported):
    root = _folder(tmp_path / "data")
    pipeline = A.Compose([step, A.Normalize()])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        build_dataset("folder", root=root, ignore_index=254, transforms=pipeline, verbose=False)
    fills = [str(w.message) for w in caught if issubclass(w.category, MaskFillWarning)]
    assert len(fills) == int(reported)
    if reported:
        name = type(step.transforms[0] if isinstance(step, A.OneOf) else step).__name__
        assert name in fills[0] and "fill_mask=254" in fills[0] and "ignore_index 254" in fills[0]
    assert len(mask_fill_problems(pipeline, 254)) == int(reported)


def test_a_preset_ignore_index_that_is_not_the_datasets_is_refused(tmp_path):
    root = _folder(tmp_path / "data")
    with pytest.raises(ValueError, match=r"ignore_index=255 differs from the dataset's ignore_index=254"):
        build_dataset("folder", root=root, ignore_index=254, transforms={"crop_size": CROP, "ignore_index": 255})
