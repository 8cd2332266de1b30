"""Contract tests for every registered loss (parametrized over LOSSES.names() and each loss's modes)."""

from __future__ import annotations

import sys

import pytest
import torch

from segkit.losses import LOSSES, build_loss

from ._cases import FUNCTIONAL, build, cases, extras, inputs, takes_outputs
from ._reference import reference, tolerance

CASES = cases()
IDS = [f"{n}-{m}" for n, m in CASES]


@pytest.fixture(params=CASES, ids=IDS)
def case(request):
    name, mode = request.param
    if takes_outputs(name):
        pytest.skip(f"{name} takes the model's raw outputs (a tuple), not (logits, target); tested with its model")
    return name, mode


def _call(loss, name, logits, target, **kw):
    return loss(logits, target, **extras(name, target, logits.dtype), **kw)


def test_module_matches_function(case):
    name, mode = case
    # The pure function: listed in _cases.FUNCTIONAL, or (the CONTRIBUTING.md convention for a new loss)
    # a function of the registered name in the module that defines the loss class.
    function = FUNCTIONAL.get(name) or getattr(sys.modules[LOSSES.get(name).__module__], name, None)
    assert callable(function), f"{name!r}: define a pure function {name}(logits, target, ...) beside the module"
    logits, target = inputs(mode)
    module = build(name, mode)
    kwargs = {"mode": mode} if mode == "binary" or name not in ("lovasz", "lovasz_softmax", "lovasz_hinge") else {}
    if name not in FUNCTIONAL:
        kwargs = {}
    expected = function(logits, target, **kwargs, **extras(name, target))
    torch.testing.assert_close(_call(module, name, logits, target), expected, rtol=0, atol=0)


def test_gradcheck_float64(case):
    name, mode = case
    logits, target = inputs(mode, n=1)
    module = build(name, mode)
    extra = extras(name, target)
    if "iou" in extra:
        # iou_balanced detaches its data-dependent weights by design; with iou = 1 they are identically 1, so
        # the analytic gradient must match finite differences (the detached case is checked in test_references).
        extra["iou"] = torch.ones_like(extra["iou"])
    assert torch.autograd.gradcheck(
        lambda x: module(x, target, **extra), (logits.requires_grad_(),), fast_mode=True, atol=1e-6
    )


def test_float32_and_float64_agree(case):
    name, mode = case
    logits, target = inputs(mode)
    module = build(name, mode)
    lo64 = _call(module, name, logits, target)
    lo32 = _call(module, name, logits.float(), target)
    assert lo32.dtype == torch.float32 and lo64.dtype == torch.float64
    torch.testing.assert_close(lo32.double(), lo64, rtol=1e-4, atol=1e-5)


def test_ignored_pixels_have_no_effect(case):
    name, mode = case
    logits, target = inputs(mode)
    target[0, 3, :3] = 255
    module = build(name, mode)
    ignored = (target == 255).unsqueeze(1).expand_as(logits)
    x1 = logits.clone().requires_grad_()
    x2 = logits.clone()
    x2[ignored] = torch.randn(int(ignored.sum()), dtype=x2.dtype) * 10
    x2.requires_grad_()
    l1, l2 = _call(module, name, x1, target), _call(module, name, x2, target)
    torch.testing.assert_close(l1, l2)
    l1.backward()
    assert torch.all(x1.grad[ignored] == 0)
    assert x1.grad[~ignored].abs().sum() > 0


def test_all_ignored_is_zero_with_zero_grad(case):
    name, mode = case
    logits, target = inputs(mode)
    target.fill_(255)
    x = logits.requires_grad_()
    loss = _call(build(name, mode), name, x, target)
    assert loss.shape == () and loss.item() == 0.0
    loss.backward()
    assert torch.equal(x.grad, torch.zeros_like(x))


def test_absent_class_and_single_pixel_class(case):
    name, mode = case
    logits, target = inputs(mode)
    target[target == 1] = 0  # class 1 absent ...
    target[1, 2, 3] = 1  # ... except one pixel of the second image
    x = logits.requires_grad_()
    loss = _call(build(name, mode), name, x, target)
    assert loss.item() == pytest.approx(reference(name, mode, logits, target), **tolerance(name))
    loss.backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    target[1, 2, 3] = 0  # fully absent
    x.grad = None
    loss = _call(build(name, mode), name, x, target)
    loss.backward()
    assert loss.item() == pytest.approx(reference(name, mode, logits, target), **tolerance(name))
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_extreme_logits_are_finite_and_exact(case, dtype):
    name, mode = case
    logits, target = inputs(mode, dtype=dtype)
    x = (torch.sign(logits) * 50).requires_grad_()
    loss = _call(build(name, mode), name, x, target)
    loss.backward()
    assert torch.isfinite(x.grad).all()
    # The reference works in float64 on the same +-50 logits; float32 saturates probabilities earlier.
    tol = tolerance(name) if dtype == torch.float64 else {"rel": 1e-5, "abs": 1e-6}
    assert loss.item() == pytest.approx(reference(name, mode, x, target), **tol)


def test_batch_size_one(case):
    name, mode = case
    logits, target = inputs(mode, n=2)
    module = build(name, mode)
    x = logits[:1].clone().requires_grad_()
    loss = _call(module, name, x, target[:1])
    loss.backward()
    assert loss.shape == () and x.grad.abs().sum() > 0
    assert loss.item() == pytest.approx(reference(name, mode, logits[:1], target[:1]), **tolerance(name))
    # A second image that is all ignored: losses reduced over valid pixels keep the first image's value, per-image
    # means (lovasz_hinge) count it as 0; the reference says which.
    padded = target.clone()
    padded[1] = 255
    two = _call(module, name, logits, padded)
    assert two.item() == pytest.approx(reference(name, mode, logits, padded), **tolerance(name))


def test_wrong_shapes_dtypes_and_labels_raise(case):
    name, mode = case
    logits, target = inputs(mode)
    module = build(name, mode)
    with pytest.raises(ValueError, match="logits"):
        _call(module, name, logits[0], target)
    with pytest.raises(ValueError, match="target"):
        _call(module, name, logits, target[:, :-1])
    bad = target.clone()
    bad[0, 4, 4] = 7
    with pytest.raises(ValueError, match="7"):
        _call(module, name, logits, bad)
    if mode == "multiclass":
        with pytest.raises(ValueError, match="int64"):
            _call(module, name, logits, target.int())


def test_value_checks_skip_non_cpu_tensors():
    # On a non-CPU device the label-value check (a host sync) is skipped; 'meta' tensors have no values, so a
    # sync would raise here.
    from segkit.losses.functional import check_binary_inputs, check_multiclass_inputs

    check_multiclass_inputs(
        torch.empty(2, 3, 4, 4, device="meta"), torch.empty(2, 4, 4, dtype=torch.long, device="meta"), 255
    )
    check_binary_inputs(
        torch.empty(2, 1, 4, 4, device="meta"), torch.empty(2, 4, 4, dtype=torch.long, device="meta"), 255
    )


@pytest.mark.parametrize("name", [n for n in LOSSES.names() if n != "ce"])
def test_every_name_combines_with_ce(name):
    cls = LOSSES.get(name)
    if takes_outputs(name) or "iou" in getattr(cls, "extra_inputs", ()) or getattr(cls, "mode", None) == "binary":
        pytest.skip(f"{name} needs inputs ce does not take (raw outputs, an iou map, or binary logits)")
    logits, target = inputs("multiclass")
    combined = build_loss({"ce": 1.0, name: 0.5})
    terms = combined.forward_terms(logits, target)
    expected_term = 0.5 * LOSSES.build(name)(logits, target)
    torch.testing.assert_close(terms[name], expected_term)
    torch.testing.assert_close(combined(logits, target), LOSSES.build("ce")(logits, target) + expected_term)


def test_plus_syntax_has_equal_weights():
    logits, target = inputs("multiclass")
    loss = build_loss("ce+dice")
    torch.testing.assert_close(
        loss(logits, target), LOSSES.build("ce")(logits, target) + LOSSES.build("dice")(logits, target)
    )
