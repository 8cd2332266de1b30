"""A user's own albumentations ``Normalize`` in ``transforms=`` is what the checkpoint records, so Predictor
normalises new images exactly as training did (issue 26 item 4); per-image normalisation is refused."""

import albumentations as A
import numpy as np
import pytest
import torch

from segkit import Trainer
from segkit.checkpoint import load_checkpoint
from segkit.datasets import build_dataset, dataset_info
from segkit.inference import Predictor
from tests.engine._nets import TinyNet

MEAN, STD = (0.5, 0.4, 0.3), (0.25, 0.2, 0.1)  # far from ImageNet's, so a wrong record changes the logits


def _shapes(split, transforms):
    return build_dataset("shapes", split=split, num_images=4, image_size=24, transforms=transforms)


def test_the_checkpoint_records_the_users_normalize_and_predictor_matches_training(tmp_path):
    user = A.Compose([A.Normalize(mean=MEAN, std=STD, max_pixel_value=255.0)])
    train, val = _shapes("train", user), _shapes("val", user)
    norm = dataset_info(train).normalization
    assert norm.mean == pytest.approx([m * 255 for m in MEAN]) and norm.std == pytest.approx([s * 255 for s in STD])

    model = TinyNet(width=4)
    Trainer(model, "ce", train, val, epochs=1, batch_size=4, out_dir=tmp_path).fit()
    stored = load_checkpoint(tmp_path / "best.pt")["normalization"]
    assert stored["mean"] == pytest.approx([127.5, 102.0, 76.5]) and stored["std"] == pytest.approx([63.75, 51.0, 25.5])

    # The model sees the same input through Predictor as through the dataset it was validated on.
    predictor = Predictor(model, normalization=stored, device="cpu")  # as from_checkpoint builds it
    raw, _ = val.generate(0)[:2]
    expected = torch.from_numpy((raw.astype(np.float32) / 255 - np.float32(MEAN)) / np.float32(STD)).permute(2, 0, 1)
    assert torch.allclose(predictor.preprocess(raw)[0], expected, atol=1e-5)
    assert torch.allclose(val[0]["image"], expected, atol=1e-5)


def test_a_preset_keeps_the_datasets_own_statistics():
    data = _shapes("train", {"preset": "train", "crop_size": 16})
    norm = dataset_info(data).normalization
    assert norm is None or norm.mean == pytest.approx([0.485 * 255, 0.456 * 255, 0.406 * 255])


def test_per_image_normalize_is_refused_with_the_remedy(tmp_path):
    user = A.Compose([A.Normalize(normalization="image")])
    with pytest.raises(ValueError, match=r"normalization='image'.*mean=/std="):
        Trainer(TinyNet(width=4), "ce", _shapes("train", user), None, epochs=1, out_dir=tmp_path)
