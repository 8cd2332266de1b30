"""Mask R-CNN input convention: ImageNet-normalised images in training, in Predictor and on raw files alike."""

import numpy as np
import torch
from PIL import Image

from segkit import Predictor
from segkit.datasets import build_dataset
from segkit.datasets.base import IMAGENET_MEAN, IMAGENET_STD
from segkit.models import build_model

SMALL = {
    "backbone": "mobilenet_v3_large",
    "min_size": 64,
    "max_size": 64,
    "rpn_pre_nms_top_n_test": 100,
    "rpn_post_nms_top_n_test": 50,
    "box_detections_per_img": 10,
    "box_score_thresh": 0.0,
}


def test_predictor_on_a_file_sees_what_training_saw_and_nothing_is_normalised_twice(tmp_path):
    torch.manual_seed(0)
    data = build_dataset("shapes", split="val", num_images=1, image_size=64, task="instance")
    model = build_model("mask_rcnn", num_classes=data.num_classes, **SMALL).eval()
    assert list(model.transform.image_mean) == [0.0, 0.0, 0.0] and list(model.transform.image_std) == [1.0] * 3
    raw = data.generate(0)[0]
    Image.fromarray(raw).save(tmp_path / "img.png")
    expected = (torch.from_numpy(raw).permute(2, 0, 1).float() / 255 - torch.tensor(IMAGENET_MEAN)[:, None, None]) / (
        torch.tensor(IMAGENET_STD)[:, None, None]
    )
    torch.testing.assert_close(data[0]["image"], expected)  # the dataset normalises once, with ImageNet stats
    with torch.no_grad():
        ref = model([data[0]["image"]])[0]
    got = Predictor(model, device="cpu", min_confidence=0.0).predict(tmp_path / "img.png")
    assert len(got) == len(ref["scores"]) > 0
    np.testing.assert_allclose(got.scores, ref["scores"].numpy(), rtol=1e-4)

    # A detector that normalises inside (torchvision's convention) is fed [0, 1] images by Predictor:
    # with the same weights it must give the same detections.
    inside = build_model(
        "mask_rcnn", num_classes=data.num_classes, image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD, **SMALL
    ).eval()
    inside.load_state_dict(model.state_dict())
    other = Predictor(inside, device="cpu", min_confidence=0.0).predict(tmp_path / "img.png")
    np.testing.assert_allclose(other.scores, got.scores, rtol=1e-4)
    np.testing.assert_allclose(other.boxes, got.boxes, rtol=1e-4, atol=1e-3)
