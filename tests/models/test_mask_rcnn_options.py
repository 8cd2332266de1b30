"""Mask R-CNN options sized for small objects: RoIAlign sampling ratio, several anchor sizes per FPN level."""

from __future__ import annotations

import pytest
import torch

from segkit.datasets import build_dataset
from segkit.export import model_from_checkpoint
from segkit.models import build_model

LIGHT = {"backbone": "resnet18_fpn", "fpn_channels": 32, "min_size": 64, "max_size": 64,
         "rpn_post_nms_top_n_train": 50, "box_batch_size_per_image": 16, "box_detections_per_img": 10}  # fmt: skip


def _train_step(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    data = build_dataset("shapes", split="train", num_images=2, image_size=64, task="instance")
    losses = model([data[i]["image"] for i in range(2)], [data[i]["target"] for i in range(2)])
    sum(losses.values()).backward()
    return losses


def test_roi_sampling_ratio_reaches_both_roi_pools_and_trains() -> None:
    torch.manual_seed(0)
    model = build_model("mask_rcnn", num_classes=4, roi_sampling_ratio=1, **LIGHT)
    assert model.roi_heads.box_roi_pool.sampling_ratio == 1
    assert model.roi_heads.mask_roi_pool.sampling_ratio == 1
    assert all(torch.isfinite(v) for v in _train_step(model).values())
    default = build_model("mask_rcnn", num_classes=4, **LIGHT)
    assert default.roi_heads.box_roi_pool.sampling_ratio == 2  # torchvision's value unless asked
    with pytest.raises(ValueError, match="roi_sampling_ratio must be >= 0"):
        build_model("mask_rcnn", num_classes=4, roi_sampling_ratio=-1, **LIGHT)


def test_roi_sampling_ratio_applies_to_torchvision_backbones() -> None:
    model = build_model("mask_rcnn", num_classes=3, backbone="mobilenet_v3_large", roi_sampling_ratio=0)
    assert model.roi_heads.box_roi_pool.sampling_ratio == 0 and model.roi_heads.mask_roi_pool.sampling_ratio == 0


def test_several_anchor_sizes_per_level() -> None:
    sizes = [[12, 20], [28, 40], [56, 80], [112, 160]]
    model = build_model("mask_rcnn", num_classes=4, rpn_anchor_sizes=sizes, **LIGHT)
    gen = model.rpn.anchor_generator
    assert gen.sizes == ((12, 20), (28, 40), (56, 80), (112, 160))
    assert gen.num_anchors_per_location() == [6, 6, 6, 6]  # 2 sizes x 3 aspect ratios
    assert model.rpn.head.cls_logits.out_channels == 6
    _train_step(model)
    with pytest.raises(ValueError, match="same number of sizes"):
        build_model("mask_rcnn", num_classes=4, rpn_anchor_sizes=[[12, 20], [28], [56], [112]], **LIGHT)
    with pytest.raises(ValueError, match="one size per FPN level \\(5 for resnet50_fpn\\)"):
        build_model("mask_rcnn", num_classes=4, backbone="resnet50_fpn", rpn_anchor_sizes=[16, 32])


def test_options_survive_the_checkpoint(tmp_path) -> None:
    """A checkpoint rebuilds the model with the same sampling ratio and anchors (model_config records them)."""
    model = build_model("mask_rcnn", num_classes=4, roi_sampling_ratio=1, rpn_anchor_sizes=[[12, 20]] * 4, **LIGHT)
    torch.save({"model": model.state_dict(), "model_config": model.model_config}, tmp_path / "m.pt")
    again = model_from_checkpoint(tmp_path / "m.pt")
    assert again.roi_heads.mask_roi_pool.sampling_ratio == 1
    assert again.rpn.anchor_generator.sizes == ((12, 20),) * 4
