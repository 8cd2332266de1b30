"""class_presence / class_presence_loss against per-image references (torch.unique, torch's BCE)."""

import pytest
import torch
import torch.nn.functional as F

from segkit.losses import ClassPresenceLoss, class_presence, class_presence_loss


def _unique_presence(target, k, ignore=255):
    out = torch.zeros(len(target), k)
    for n, t in enumerate(target):
        labels = torch.unique(t[t != ignore])
        out[n, labels] = 1.0
    return out


def test_presence_matches_torch_unique_per_image():
    g = torch.Generator().manual_seed(0)
    target = torch.randint(0, 3, (4, 6, 7), generator=g)  # classes 3 and 4 of 5 absent
    target[1] = 255
    target[2, :3] = 255
    target[3] = 4
    assert torch.equal(class_presence(target, 5), _unique_presence(target, 5))


def test_loss_leaves_out_all_ignored_images_and_is_zero_when_everything_is_ignored():
    logits = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    target = torch.zeros(3, 5, 5, dtype=torch.int64)
    target[0, :2] = 3
    target[1] = 255
    target[2] = 1
    kept = [0, 2]
    expected = F.binary_cross_entropy_with_logits(logits[kept], _unique_presence(target, 4)[kept].double())
    torch.testing.assert_close(class_presence_loss(logits, target), expected)
    torch.testing.assert_close(ClassPresenceLoss()(logits, target), expected)
    empty = class_presence_loss(logits, torch.full_like(target, 255))
    (grad,) = torch.autograd.grad(empty, logits)
    assert float(empty.detach()) == 0.0 and torch.count_nonzero(grad) == 0


def test_gradcheck_and_bad_inputs():
    target = torch.randint(0, 3, (2, 4, 4))
    logits = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: class_presence_loss(x, target), (logits,))
    with pytest.raises(ValueError, match=r"class_logits: expected a float tensor of shape \(2, K\)"):
        class_presence_loss(torch.randn(2, 3, 4, 4), target)
    with pytest.raises(ValueError, match=r"label 3 is outside \[0, 3\)"):
        class_presence_loss(torch.randn(2, 3), torch.full((2, 4, 4), 3))
    with pytest.raises(ValueError, match="target: expected int64"):
        class_presence(target.float(), 3)
