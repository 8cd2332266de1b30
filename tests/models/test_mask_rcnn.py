"""Mask R-CNN: torchvision's parameter count and interface, a train step on shapes, score threshold, weights."""

from __future__ import annotations

import urllib.error

import pytest
import torch
import torchvision
from torchvision.models.detection import MaskRCNN_ResNet50_FPN_Weights

from segkit.checkpoint import save_checkpoint
from segkit.datasets import build_dataset
from segkit.models import build_model
from segkit.models._utils import WeightsUnavailableError
from segkit.models.mask_rcnn import COCO_CATEGORIES

# Small and cheap: 64 px images, few proposals and sampled RoIs.
SMALL = {
    "backbone": "mobilenet_v3_large",
    "min_size": 64,
    "max_size": 64,
    "rpn_pre_nms_top_n_train": 100,
    "rpn_post_nms_top_n_train": 50,
    "rpn_pre_nms_top_n_test": 100,
    "rpn_post_nms_top_n_test": 50,
    "box_batch_size_per_image": 32,
    "box_detections_per_img": 10,  # the mask head runs on every detection: keep them few
}


def _count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_resnet50_fpn_91_classes_matches_torchvision_count() -> None:
    ours = build_model("mask_rcnn", num_classes=91)
    ref = torchvision.models.detection.maskrcnn_resnet50_fpn(weights=None, weights_backbone=None)
    assert _count(ours) == _count(ref) == 44_454_513


def test_train_step_on_shapes_then_eval_outputs() -> None:
    data = build_dataset("shapes", split="train", num_images=2, image_size=64, task="instance")
    model = build_model("mask_rcnn", num_classes=data.num_classes, **SMALL)
    samples = [data[0], data[1]]
    model.train()
    losses = model([s["image"] for s in samples], [s["target"] for s in samples])
    assert set(losses) == {"loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness", "loss_rpn_box_reg"}
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    assert model.roi_heads.mask_predictor.mask_fcn_logits.weight.grad is not None

    model.eval()
    model.roi_heads.score_thresh = 0.0  # keep every detection of the untrained model
    with torch.no_grad():
        (out,) = model([samples[0]["image"]])
    assert set(out) == {"boxes", "labels", "scores", "masks"}
    k = out["boxes"].shape[0]
    assert (
        k > 0 and out["boxes"].shape == (k, 4) and out["scores"].shape == (k,) and out["masks"].shape == (k, 1, 64, 64)
    )


def test_box_score_thresh_filters_detections() -> None:
    low = build_model("mask_rcnn", num_classes=3, box_score_thresh=0.0, **SMALL).eval()
    torch.manual_seed(1)
    with torch.no_grad():
        # An untrained model scores every box alike: calibrate BatchNorm on a few images and use a
        # wider classifier init so the scores spread out.
        low.backbone.train()
        low.backbone(torch.rand(4, 3, 64, 64))
        low.eval()
        low.roi_heads.box_predictor.cls_score.weight.normal_(0.0, 1.0)
    image = torch.rand(3, 64, 64)
    with torch.no_grad():
        (a,) = low([image])
    thresh = float(a["scores"].median())
    high = build_model("mask_rcnn", num_classes=3, box_score_thresh=thresh, **SMALL).eval()
    high.load_state_dict(low.state_dict())
    with torch.no_grad():
        (b,) = high([image])
    # Greedy NMS keeps a box iff no higher-scored kept box overlaps it, so the survivors above the
    # threshold are the same with or without the low-scored ones: exactly a's detections above it.
    keep = a["scores"] > thresh
    assert 0 < int(keep.sum()) < a["scores"].numel()
    torch.testing.assert_close(b["scores"], a["scores"][keep])
    torch.testing.assert_close(b["boxes"], a["boxes"][keep])


def test_local_checkpoint_fine_tunes_to_new_class_count(tmp_path) -> None:
    src = build_model("mask_rcnn", num_classes=4, class_names=["bg", "a", "b", "c"], **SMALL)
    save_checkpoint({"model": src.state_dict(), "class_names": src.class_names}, tmp_path / "det.pt")
    same = build_model("mask_rcnn", num_classes=4, weights=str(tmp_path / "det.pt"), **SMALL)
    assert same.class_names == ["bg", "a", "b", "c"]
    new = build_model("mask_rcnn", num_classes=2, weights=str(tmp_path / "det.pt"), **SMALL)
    assert new.roi_heads.box_predictor.cls_score.out_features == 2
    assert new.roi_heads.mask_predictor.mask_fcn_logits.out_channels == 2
    ref = src.state_dict()
    for key, value in new.state_dict().items():
        if not key.startswith(("roi_heads.box_predictor", "roi_heads.mask_predictor")):
            assert torch.equal(value, ref[key]), key


def test_local_checkpoint_serves_its_ema_weights_and_names_the_new_head(tmp_path, capsys) -> None:
    """weights=PATH follows the rule of every segkit model: the EMA weights when the run kept them (they chose
    best.pt), weights_key="model" for the raw ones, and a new class count says which tensors were not loaded."""
    src = build_model("mask_rcnn", num_classes=4, **SMALL)
    raw = src.state_dict()
    ema = {k: v + 1 if v.is_floating_point() else v for k, v in raw.items()}
    save_checkpoint({"model": raw, "ema": ema}, tmp_path / "det.pt")
    for key, expected in ((None, ema), ("model", raw), ("ema", ema)):
        loaded = build_model("mask_rcnn", num_classes=4, weights=str(tmp_path / "det.pt"), weights_key=key, **SMALL)
        for name, value in loaded.state_dict().items():
            assert torch.equal(value, expected[name]), (key, name)
    assert capsys.readouterr().err == ""  # same class count: nothing replaced, nothing to say
    new = build_model("mask_rcnn", num_classes=2, weights=str(tmp_path / "det.pt"), **SMALL)
    assert torch.equal(new.state_dict()["rpn.head.conv.0.0.weight"], ema["rpn.head.conv.0.0.weight"])
    err = capsys.readouterr().err
    assert "new box and mask predictors for 2 classes (the file has 4)" in err
    assert "roi_heads.box_predictor.cls_score.weight" in err and "roi_heads.mask_predictor.mask_fcn_logits.bias" in err
    with pytest.raises(ValueError, match="weights_key"):
        build_model("mask_rcnn", num_classes=4, weights_key="ema", **SMALL)


def test_coco_weights_load_with_category_names_or_fail_offline(monkeypatch) -> None:
    import torchvision.models._api as api

    fake = torchvision.models.detection.maskrcnn_resnet50_fpn(weights=None, weights_backbone=None).state_dict()
    monkeypatch.setattr(api, "load_state_dict_from_url", lambda *a, **k: fake)
    model = build_model("mask_rcnn", weights="coco", min_size=64, max_size=64)
    assert model.class_names == COCO_CATEGORIES and len(COCO_CATEGORIES) == 91 and COCO_CATEGORIES[1] == "person"
    torch.testing.assert_close(model.backbone.body.conv1.weight, fake["backbone.body.conv1.weight"])
    # Pretrained: frozen backbone BatchNorm (buffers), so torchvision's published count holds exactly.
    assert _count(model) == MaskRCNN_ResNet50_FPN_Weights.COCO_V1.meta["num_params"] == 44_401_393

    def offline(*a, **k):  # noqa: ANN002, ANN003
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(api, "load_state_dict_from_url", offline)
    with pytest.raises(WeightsUnavailableError, match=r"weights='coco'.*cache.*weights='/path"):
        build_model("mask_rcnn", weights="coco")


LIGHT = {**SMALL, "backbone": "resnet18_fpn", "rpn_anchor_sizes": (16, 32, 64, 128), "fpn_channels": 32}


def test_light_resnet18_fpn_is_torchvision_resnet18_with_narrow_fpn_and_trains() -> None:
    model = build_model("mask_rcnn", num_classes=4, **LIGHT)
    ref = torchvision.models.resnet18(weights=None)
    body = {k: v.shape for k, v in model.backbone.body.state_dict().items()}
    assert body == {k: v.shape for k, v in ref.state_dict().items() if not k.startswith("fc.")}
    assert model.backbone.out_channels == 32
    assert model.roi_heads.box_head.fc7.out_features == 64
    assert all(p.requires_grad for p in model.parameters())  # random init: everything trains
    data = build_dataset("shapes", split="train", num_images=2, image_size=64, task="instance")
    losses = model([data[i]["image"] for i in range(2)], [data[i]["target"] for i in range(2)])
    assert set(losses) == {"loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness", "loss_rpn_box_reg"}
    sum(losses.values()).backward()
    assert model.backbone.body.conv1.weight.grad is not None and model.backbone.body.conv1.weight.grad.abs().sum() > 0
    model.eval()
    model.roi_heads.score_thresh = 0.0
    with torch.no_grad():
        (out,) = model([data[0]["image"]])
    assert out["masks"].shape[1:] == (1, 64, 64) and out["boxes"].shape[0] > 0


def test_light_backbone_imagenet_weights_freeze_bn_and_reload_from_checkpoint(monkeypatch, tmp_path) -> None:
    import torchvision.models._api as api

    fake = torchvision.models.resnet34(weights=None).state_dict()
    monkeypatch.setattr(api, "load_state_dict_from_url", lambda *a, **k: fake)
    model = build_model(
        "mask_rcnn", num_classes=3, weights_backbone="imagenet", **{**LIGHT, "backbone": "resnet34_fpn"}
    )
    body = model.backbone.body
    torch.testing.assert_close(body.layer3[0].conv1.weight, fake["layer3.0.conv1.weight"])
    assert isinstance(body.bn1, torchvision.ops.misc.FrozenBatchNorm2d)
    # torchvision's default for a pretrained backbone: the last 3 stages train, the stem and layer1 do not.
    assert not body.conv1.weight.requires_grad and not body.layer1[0].conv1.weight.requires_grad
    assert body.layer2[0].conv1.weight.requires_grad
    save_checkpoint({"model": model.state_dict()}, tmp_path / "det.pt")

    def offline(*a, **k):  # noqa: ANN002, ANN003
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(api, "load_state_dict_from_url", offline)  # a checkpoint needs no download
    again = build_model(
        "mask_rcnn", num_classes=3, weights=str(tmp_path / "det.pt"), **{**LIGHT, "backbone": "resnet34_fpn"}
    )
    for key, value in model.state_dict().items():
        assert torch.equal(again.state_dict()[key], value), key
    with pytest.raises(WeightsUnavailableError, match="weights_backbone='imagenet'"):
        build_model("mask_rcnn", num_classes=3, weights_backbone="imagenet", **LIGHT)


def test_light_backbone_options_are_checked() -> None:
    with pytest.raises(ValueError, match="fpn_channels.*resnet18_fpn"):
        build_model("mask_rcnn", num_classes=3, fpn_channels=64)
    with pytest.raises(ValueError, match="one size per FPN level \\(4 for resnet18_fpn\\)"):
        build_model("mask_rcnn", num_classes=3, **{**LIGHT, "rpn_anchor_sizes": (16, 32, 64)})
    with pytest.raises(ValueError, match="no COCO Mask R-CNN weights for backbone='resnet18_fpn'"):
        build_model("mask_rcnn", weights="coco", backbone="resnet18_fpn")


# weights_backbone=PATH: the torchvision ImageNet classification file of each backbone (random, seeded: offline).
_CLASSIFIERS = {
    "resnet18_fpn": torchvision.models.resnet18,
    "resnet34_fpn": torchvision.models.resnet34,
    "mobilenet_v3_large": torchvision.models.mobilenet_v3_large,
    "resnet50_fpn": torchvision.models.resnet50,
    "resnet50_fpn_v2": torchvision.models.resnet50,
}


def _imagenet_file(tmp_path, make, name: str = "imagenet.pth") -> tuple[str, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    net = make(weights=None)
    with torch.no_grad():  # running statistics that differ from a fresh BatchNorm's, so loading them shows
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-1, 1)
                module.running_var.uniform_(0.5, 2)
    state = net.state_dict()
    torch.save(state, tmp_path / name)
    return str(tmp_path / name), state


@pytest.mark.parametrize("backbone", list(_CLASSIFIERS))
def test_weights_backbone_file_loads_as_imagenet_does(backbone, monkeypatch, tmp_path) -> None:
    import torchvision.models._api as api

    path, state = _imagenet_file(tmp_path, _CLASSIFIERS[backbone])
    options = {**SMALL, "backbone": backbone}
    model = build_model("mask_rcnn", num_classes=3, weights_backbone=path, **options)
    body = model.backbone.body.state_dict()
    prefix = "features." if backbone == "mobilenet_v3_large" else ""
    for key, value in body.items():
        assert torch.equal(value, state[prefix + key]), key
    # The same model as weights_backbone="imagenet" given the same file: tensors, BatchNorm kind, trainable stages.
    monkeypatch.setattr(api, "load_state_dict_from_url", lambda *a, **k: state)
    ref = build_model("mask_rcnn", num_classes=3, weights_backbone="imagenet", **options)
    assert list(body) == list(ref.backbone.body.state_dict())
    for key, value in ref.backbone.body.state_dict().items():
        assert torch.equal(body[key], value), key
    assert [type(m) for m in model.modules()] == [type(m) for m in ref.modules()]
    trainable = {n: p.requires_grad for n, p in model.named_parameters()}
    assert trainable == {n: p.requires_grad for n, p in ref.named_parameters()}
    assert not all(trainable.values())  # the stem is frozen, as torchvision does for a pretrained backbone
    # A checkpoint of it reloads (the frozen-BatchNorm layout is recognised) with no file and no download.
    save_checkpoint({"model": model.state_dict()}, tmp_path / "det.pt")
    again = build_model("mask_rcnn", num_classes=3, weights=str(tmp_path / "det.pt"), **options).state_dict()
    for key, value in model.state_dict().items():
        assert torch.equal(again[key], value), key


def test_weights_backbone_file_of_another_network_is_an_error(tmp_path) -> None:
    from segkit.checkpoint import CheckpointError

    path, _ = _imagenet_file(tmp_path, torchvision.models.resnet18, "resnet18-f37072fd.pth")
    with pytest.raises(CheckpointError, match=r"resnet50-0676ba61\.pth.*missing.*layer1\.0\.conv3\.weight") as info:
        build_model("mask_rcnn", num_classes=3, weights_backbone=path, min_size=64, max_size=64)
    assert "shape mismatches, first: layer1.0.conv1.weight" in str(info.value)
    torch.save({"conv1.weight": torch.zeros(1), "extra.weight": torch.zeros(1)}, tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match=r"unexpected keys, first: extra\.weight"):
        build_model("mask_rcnn", num_classes=3, weights_backbone=str(tmp_path / "x.pt"), **LIGHT)
    with pytest.raises(ValueError, match="None, 'imagenet' or the path .*resnet18-f37072fd.pth.*'imagenet21k'"):
        build_model("mask_rcnn", num_classes=3, weights_backbone="imagenet21k", **LIGHT)


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_torchvision_coco_state_dict_file_loads(version, tmp_path) -> None:
    """weights=PATH with torchvision's COCO file layout: v1 was trained with frozen backbone BatchNorm (its
    body has no ``num_batches_tracked``), v2 with plain BatchNorm."""
    torch.manual_seed(0)
    if version == "v1":
        made = torchvision.models.detection.maskrcnn_resnet50_fpn(weights=None, weights_backbone=None)
        state = {
            k: v
            for k, v in made.state_dict().items()
            if not (k.startswith("backbone.body.") and k.endswith("num_batches_tracked"))
        }
    else:
        made = torchvision.models.detection.maskrcnn_resnet50_fpn_v2(weights=None, weights_backbone=None)
        state = made.state_dict()
    torch.save(state, tmp_path / "coco.pth")
    backbone = "resnet50_fpn" if version == "v1" else "resnet50_fpn_v2"
    model = build_model("mask_rcnn", backbone=backbone, weights=str(tmp_path / "coco.pth"), min_size=64, max_size=64)
    assert model.state_dict().keys() == state.keys()
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key
    if version == "v1":
        assert _count(model) == MaskRCNN_ResNet50_FPN_Weights.COCO_V1.meta["num_params"]
        assert not model.backbone.body.layer1[0].conv1.weight.requires_grad
        assert model.backbone.body.layer2[0].conv1.weight.requires_grad
