"""The streaming confusion matrix against a brute-force count and hand-computed scores."""

import math

import numpy as np
import pytest
import torch

from segkit.metrics import ConfusionMatrix


def brute_force(pred, target, n, ignore):
    mat = np.zeros((n, n), np.int64)
    for p, t in zip(pred.reshape(-1).tolist(), target.reshape(-1).tolist()):
        if t != ignore and 0 <= t < n:
            mat[t, p] += 1
    return mat


def test_matches_brute_force_over_several_batches():
    g = torch.Generator().manual_seed(0)
    n = 5
    cm = ConfusionMatrix(n)
    total = np.zeros((n, n), np.int64)
    for _ in range(4):
        pred = torch.randint(0, n, (2, 7, 9), generator=g)
        target = torch.randint(0, n, (2, 7, 9), generator=g)
        target[torch.rand(target.shape, generator=g) < 0.2] = 255
        cm.update(pred, target)
        total += brute_force(pred, target, n, 255)
    assert np.array_equal(cm.mat.numpy(), total)


def test_scores_by_hand_and_nan_for_absent_classes():
    # 4 classes; class 3 is absent from both target and prediction.
    target = torch.tensor([[0, 0, 1, 1, 2, 255]])
    pred = torch.tensor([[0, 1, 1, 1, 0, 3]])
    cm = ConfusionMatrix(4)
    cm.update(pred, target)
    r = cm.compute()
    iou0, iou1, iou2 = 1 / 3, 2 / 3, 0.0
    assert math.isclose(r["iou"][0], iou0) and math.isclose(r["iou"][1], iou1) and r["iou"][2] == iou2
    assert math.isnan(r["iou"][3])
    assert math.isclose(r["miou"], (iou0 + iou1 + iou2) / 3)
    assert math.isclose(r["dice"][0], 2 * 1 / (2 + 2))
    assert math.isclose(r["pixel_accuracy"], 3 / 5)
    assert "n/a" in cm.table()


def test_logits_are_argmaxed_and_reset():
    cm = ConfusionMatrix(3)
    logits = torch.zeros(1, 3, 2, 2)
    logits[:, 2] = 1.0
    cm.update(logits, torch.full((1, 2, 2), 2))
    assert cm.compute()["miou"] == 1.0
    cm.reset()
    assert int(cm.mat.sum()) == 0


def test_labels_or_predictions_outside_the_classes_are_an_error_not_dropped():
    """A val label the model cannot predict (data with more classes than the metric) must not vanish
    from the scores: counted apart, and compute() says so. Ignored pixels stay ignored."""
    cm = ConfusionMatrix(3, ignore_index=255)
    cm.update(torch.tensor([[0, 1, 2, 255]]), torch.tensor([[0, 1, 2, 255]]))
    assert cm.compute()["miou"] == 1.0  # ignore_index is not out of range
    cm.update(torch.tensor([[0, 1]]), torch.tensor([[3, 1]]))
    with pytest.raises(ValueError, match=r"1 target pixels with labels outside \[0, 3\).*0 predicted pixels"):
        cm.compute()
    cm.reset()
    cm.update(torch.tensor([[4, 1]]), torch.tensor([[2, 1]]))  # a model with more outputs than classes
    with pytest.raises(ValueError, match=r"0 target pixels.*1 predicted pixels outside"):
        cm.compute()
    cm.reset()
    cm.update(torch.tensor([[2, 1]]), torch.tensor([[2, 1]]))
    assert cm.compute()["pixel_accuracy"] == 1.0
