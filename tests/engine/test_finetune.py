"""Fine-tuning controls: prefixes checked, frozen parts untouched (weights and BatchNorm statistics), per-part
learning rates, no decay on norms and biases, and the frozen parts' own warm-up after unfreezing."""

from __future__ import annotations

import pytest
import torch

from segkit.engine.finetune import hold_frozen_norms, parameter_groups, resolve_prefixes, set_frozen, unfreeze_factors
from segkit.engine.optim import build_optimizer, build_scheduler
from segkit.models import build_model


@pytest.fixture
def unet():
    return build_model("unet", num_classes=3, encoder="resnet18", decoder_channels=(8, 8, 8, 8, 8))


def test_prefixes_resolve_through_the_wrapper_and_unknown_ones_list_the_parts(unet):
    assert resolve_prefixes(unet, "encoder", "freeze") == ["model.encoder"]
    assert resolve_prefixes(unet, ["decoder.blocks.0", "model.segmentation_head"], "lr_mult") == [
        "model.decoder.blocks.0",
        "model.segmentation_head",
    ]
    with pytest.raises(ValueError, match=r"freeze: 'encodr' names no part.*decoder, encoder, segmentation_head"):
        resolve_prefixes(unet, "encodr", "freeze")


def test_groups_hold_every_parameter_once_with_their_lr_and_decay(unet):
    groups = parameter_groups(unet, lr=1e-3, weight_decay=0.05, lr_mult={"model.encoder": 0.1})
    ids = [id(p) for g in groups for p in g["params"]]
    assert sorted(ids) == sorted(id(p) for p in unet.parameters())
    by_name = {n: p for n, p in unet.named_parameters()}
    group_of = {id(p): g for g in groups for p in g["params"]}
    conv = group_of[id(by_name["model.encoder.layer1.0.conv1.weight"])]
    bn = group_of[id(by_name["model.encoder.layer1.0.bn1.weight"])]
    bias = group_of[id(by_name["model.segmentation_head.0.bias"])]
    head = group_of[id(by_name["model.segmentation_head.0.weight"])]
    assert (conv["lr"], conv["weight_decay"]) == (pytest.approx(1e-4), 0.05)
    assert (bn["lr"], bn["weight_decay"]) == (pytest.approx(1e-4), 0.0)
    assert (bias["lr"], bias["weight_decay"], head["weight_decay"]) == (1e-3, 0.0, 0.05)
    same = parameter_groups(unet, lr=1e-3, weight_decay=0.05, norm_weight_decay=None)
    assert {g["weight_decay"] for g in same} == {0.05}


def test_frozen_encoder_keeps_weights_and_batchnorm_statistics(unet):
    frozen = resolve_prefixes(unet, "encoder", "freeze")
    set_frozen(unet, frozen, True)
    groups = parameter_groups(unet, 1e-2, 0.1, frozen=frozen)
    optimizer = build_optimizer("adamw", groups, 1e-2, 0.1)
    before = {k: v.clone() for k, v in unet.state_dict().items()}
    unet.train()
    hold_frozen_norms(unet, frozen)
    for _ in range(3):
        x, y = torch.randn(2, 3, 32, 32), torch.randint(0, 3, (2, 32, 32))
        torch.nn.functional.cross_entropy(unet(x), y).backward()
        optimizer.step()
        optimizer.zero_grad()
    after = unet.state_dict()
    encoder = [k for k in before if k.startswith("model.encoder.")]
    assert any("running_mean" in k for k in encoder)
    for key in encoder:  # weights, BatchNorm running statistics and batch counters all unchanged
        assert torch.equal(before[key], after[key]), key
    assert not torch.equal(
        before["model.decoder.blocks.0.conv1.0.weight"], after["model.decoder.blocks.0.conv1.0.weight"]
    )
    assert not torch.equal(
        before["model.decoder.blocks.0.conv1.1.running_mean"], after["model.decoder.blocks.0.conv1.1.running_mean"]
    )


def test_unfrozen_parts_get_their_own_linear_warmup(unet):
    groups = parameter_groups(unet, 1.0, 0.0, frozen=["model.encoder"])
    optimizer = torch.optim.SGD(groups, lr=1.0)
    scheduler = build_scheduler(None, optimizer, 100, group_factors=unfreeze_factors(groups, 4, 3))
    lrs = []
    for _ in range(9):
        lrs.append({g["name"]: g["lr"] for g in optimizer.param_groups})
        optimizer.step()
        scheduler.step()
    frozen = [row["model.encoder/frozen"] for row in lrs]
    assert frozen == pytest.approx([0, 0, 0, 0, 1 / 3, 2 / 3, 1, 1, 1])
    assert [row["rest"] for row in lrs] == [1.0] * 9


def test_lr_mult_follows_poly_with_warmup_at_every_step(unet):
    groups = parameter_groups(unet, 0.01, 0.0, lr_mult={"model.encoder": 0.1})
    optimizer = torch.optim.SGD(groups, lr=0.01)
    scheduler = build_scheduler("poly", optimizer, 10, warmup_iters=3, group_factors=unfreeze_factors(groups, None, 1))
    for i in range(10):
        # torchvision references' poly with linear warm-up, computed here by hand.
        factor = min(1.0, (i + 1) / 3) * (1 - i / 10) ** 0.9
        lrs = {g["name"]: g["lr"] for g in optimizer.param_groups}
        assert lrs["model.encoder"] == pytest.approx(0.001 * factor) and lrs["rest"] == pytest.approx(0.01 * factor)
        optimizer.step()
        scheduler.step()
