"""One implementation of each shared rule (issue 29 item 6): evenly spaced indices, the parse of combined loss
names, and the detector test that decides how a model trains, predicts and exports."""

import numpy as np
import pytest
import torch

from segkit.datasets.subsample import evenly_spaced
from segkit.export import export_onnx
from segkit.export_instance import is_detector
from segkit.inference.instances import is_detection_model
from segkit.losses import build_loss, loss_weights


@pytest.mark.parametrize(("n", "k"), [(10, 4), (7, 3), (100, 8), (5, 5), (3, 9), (1, 1), (9, None)])
def test_evenly_spaced_rounds_to_the_nearest_and_keeps_both_ends(n, k):
    got = evenly_spaced(n, k)
    if k is None or k >= n:
        assert got == list(range(n))
        return
    step = (n - 1) / (k - 1)
    assert got == sorted({int(np.floor(i * step + 0.5)) for i in range(k)})  # round half up; no .5 ties here
    assert got[0] == 0 and got[-1] == n - 1


def test_combined_loss_names_are_parsed_once():
    assert loss_weights("ce") is None
    assert loss_weights(" ce + dice ") == {"ce": 1.0, "dice": 1.0}
    assert loss_weights({"ce": 1, "dice": 0.5}) == {"ce": 1.0, "dice": 0.5}
    loss = build_loss("ce+dice")
    logits, target = torch.randn(2, 3, 8, 8), torch.randint(0, 3, (2, 8, 8))
    terms = loss.forward_terms(logits, target)
    assert set(terms) == {"ce", "dice"}


def test_a_detector_without_masks_is_an_instance_model_everywhere_and_export_says_so(tmp_path):
    from torchvision.models.detection import retinanet_resnet50_fpn

    model = retinanet_resnet50_fpn(weights=None, weights_backbone=None, num_classes=3)
    assert is_detection_model(model) and is_detector(model)  # trains and predicts as instance, exports so too
    with pytest.raises(ValueError, match="detector without masks"):
        export_onnx(model, tmp_path / "r.onnx", (64, 64))
    assert not (tmp_path / "r.onnx").exists()
