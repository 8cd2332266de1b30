"""Predictor on a torchvision Mask R-CNN: instances at the original size, filtered by min_confidence."""

import numpy as np
import pytest
import torch

from segkit import Predictor
from segkit.inference import Instances

NAMES = ["background", "circle", "square", "triangle"]


@pytest.fixture(scope="module")
def maskrcnn():
    """A real torchvision MaskRCNN on a tiny two-conv backbone (the resnet50 one costs ~7 s a call on CPU)."""
    from torch import nn
    from torchvision.models.detection import MaskRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.ops import MultiScaleRoIAlign

    torch.manual_seed(0)
    backbone = nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, stride=2, padding=1)
    )
    backbone.out_channels = 16
    model = MaskRCNN(
        backbone,
        num_classes=4,
        min_size=64,
        max_size=64,
        box_score_thresh=0.0,
        box_detections_per_img=20,
        rpn_pre_nms_top_n_test=100,
        rpn_post_nms_top_n_test=50,
        rpn_anchor_generator=AnchorGenerator(((8, 16, 32),), ((0.5, 1.0, 2.0),)),
        box_roi_pool=MultiScaleRoIAlign(["0"], 7, 2),
        mask_roi_pool=MultiScaleRoIAlign(["0"], 14, 2),
    )
    return model.eval()


def test_maskrcnn_instances_are_filtered_by_score_and_have_the_original_size(maskrcnn):
    image = np.random.default_rng(0).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    with torch.no_grad():
        raw = maskrcnn([torch.tensor(image).permute(2, 0, 1).float() / 255])[0]
    scores = raw["scores"].numpy()
    assert len(scores) > 0, "an untrained Mask R-CNN with score_thresh 0 should return detections"
    threshold = float(np.median(scores))
    pred = Predictor(maskrcnn, class_names=NAMES, device="cpu", min_confidence=threshold)
    assert pred.task == "instance"
    inst = pred.predict(image)
    assert isinstance(inst, Instances)
    assert len(inst) == int((scores >= threshold).sum()) > 0
    assert (inst.scores >= threshold).all()
    assert inst.masks is not None and inst.masks.shape == (len(inst), 50, 70) and inst.masks.dtype == bool
    keep = scores >= threshold
    np.testing.assert_allclose(inst.boxes, raw["boxes"].numpy()[keep], rtol=1e-5)
    np.testing.assert_array_equal(inst.masks, raw["masks"].numpy()[keep, 0] > 0.5)
    assert inst.names == [NAMES[i] for i in raw["labels"].numpy()[keep]]

    # a per-call threshold wins over the predictor's, and a batch gives one Instances per image
    everything, again = pred.predict([image, image], min_confidence=0.0)
    assert len(everything) == len(scores) and len(again) == len(scores)
    only = everything.filter(0.0, classes=["circle"])
    assert set(only.names) <= {"circle"} and len(only) == int((raw["labels"] == 1).sum())
    np.testing.assert_array_equal(pred.predict(image, min_confidence=0.0, classes=[1]).labels, only.labels)


def test_instances_label_map_puts_the_most_confident_on_top():
    masks = np.zeros((2, 4, 4), bool)
    masks[0, :2], masks[1, 1:3] = True, True
    inst = Instances(
        np.zeros((2, 4), np.float32), np.array([1, 2]), np.array([0.9, 0.5], np.float32), masks, ["a", "b"], (4, 4)
    )
    expected = np.array([[1] * 4, [1] * 4, [2] * 4, [0] * 4], np.uint8)
    np.testing.assert_array_equal(inst.to_label_map(), expected)
    assert len(inst.filter(0.6)) == 1 and inst.filter(0.0, classes=["b"]).names == ["b"]


def test_tta_is_refused_for_instance_models(maskrcnn):
    pred = Predictor(maskrcnn, device="cpu", tta=True)
    with pytest.raises(ValueError, match="semantic"):
        pred.predict(np.zeros((32, 32, 3), np.uint8))
