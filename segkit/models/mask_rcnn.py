"""Mask R-CNN from torchvision (ResNet-50 FPN v1/v2, MobileNetV3-Large FPN) with Matterport-style options and weights.

torchvision's detection modules (which import torch._dynamo: seconds) are imported when a model is built, not
when the name is registered, so ``import segkit`` stays cheap.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from segkit.checkpoint import CheckpointError, load_checkpoint, load_state_dict_checked, mismatch_report, model_weights
from segkit.models._utils import download_guard, torch_cache_dir
from segkit.models.registry import MODELS
from segkit.models.weights import is_weights_file

_log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from torchvision.models import WeightsEnum
    from torchvision.models.detection import MaskRCNN

__all__ = ["BACKBONES", "COCO_CATEGORIES", "mask_rcnn", "replace_predictors"]

COCO_CATEGORIES: list[str]
"""The 91 COCO category names of torchvision's detection weights, index = label ("__background__" = 0, "N/A"
for the ids COCO leaves unused); read from torchvision on first access (the module's ``__getattr__``)."""


def __getattr__(name: str) -> Any:
    if name == "COCO_CATEGORIES":
        from torchvision.models._meta import _COCO_CATEGORIES

        return list(_COCO_CATEGORIES)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


BACKBONES = ("resnet50_fpn", "resnet50_fpn_v2", "mobilenet_v3_large", "resnet18_fpn", "resnet34_fpn")

# The light ResNet variants: FPN on the stride-8/16/32 stages (+ max-pool level), narrow heads.
_LIGHT = ("resnet18_fpn", "resnet34_fpn")
_LIGHT_ANCHORS = (32, 64, 128, 256)


def _imagenet(backbone: str) -> WeightsEnum:
    """The torchvision ImageNet file a backbone's body is initialised from (weights_backbone="imagenet" or a path)."""
    from torchvision.models import MobileNet_V3_Large_Weights, ResNet18_Weights, ResNet34_Weights, ResNet50_Weights

    weights: dict[str, WeightsEnum] = {
        "resnet50_fpn": ResNet50_Weights.IMAGENET1K_V1,
        "resnet50_fpn_v2": ResNet50_Weights.IMAGENET1K_V1,
        "mobilenet_v3_large": MobileNet_V3_Large_Weights.IMAGENET1K_V1,
        "resnet18_fpn": ResNet18_Weights.IMAGENET1K_V1,
        "resnet34_fpn": ResNet34_Weights.IMAGENET1K_V1,
    }
    return weights[backbone]


# A ``weights_backbone`` value used inside this module only: build the layout of a pretrained backbone (frozen
# BatchNorm where torchvision freezes it, torchvision's default trainable stages) without loading any weights,
# for a file or checkpoint that supplies them.
_LAYOUT = "pretrained-layout"


def replace_predictors(model: MaskRCNN, num_classes: int) -> MaskRCNN:
    """Give ``model`` new (randomly initialised) box and mask predictors for ``num_classes``; keep the rest.

    Args:
        model: a torchvision ``MaskRCNN``.
        num_classes: classes including background.

    Returns:
        ``model``, changed in place.
    """
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
    from torchvision.models.detection.mask_rcnn import MaskRCNNPredictor

    box = model.roi_heads.box_predictor
    model.roi_heads.box_predictor = FastRCNNPredictor(box.cls_score.in_features, num_classes)
    mask = model.roi_heads.mask_predictor
    model.roi_heads.mask_predictor = MaskRCNNPredictor(
        mask.conv5_mask.in_channels, mask.conv5_mask.out_channels, num_classes
    )
    return model


def _build(
    backbone: str,
    num_classes: int,
    coco: bool,
    weights_backbone: str | None,
    trainable_backbone_layers: int | None,
    rpn_anchor_sizes: Sequence[int | Sequence[int]] | None,
    kwargs: dict[str, Any],
) -> MaskRCNN:
    from torchvision.models import MobileNet_V3_Large_Weights, ResNet50_Weights
    from torchvision.models.detection import (
        MaskRCNN,
        MaskRCNN_ResNet50_FPN_V2_Weights,
        MaskRCNN_ResNet50_FPN_Weights,
        maskrcnn_resnet50_fpn,
        maskrcnn_resnet50_fpn_v2,
    )
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.backbone_utils import _mobilenet_extractor
    from torchvision.models.mobilenetv3 import mobilenet_v3_large
    from torchvision.ops import misc as misc_nn_ops

    if backbone in ("resnet50_fpn", "resnet50_fpn_v2"):
        if rpn_anchor_sizes is not None:
            sizes = _level_sizes(rpn_anchor_sizes, 5, backbone)
            kwargs["rpn_anchor_generator"] = AnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * len(sizes))
        builder = maskrcnn_resnet50_fpn if backbone == "resnet50_fpn" else maskrcnn_resnet50_fpn_v2
        bb_enum = ResNet50_Weights.IMAGENET1K_V1 if weights_backbone == "imagenet" else None
        coco_weights = {
            "resnet50_fpn": MaskRCNN_ResNet50_FPN_Weights.COCO_V1,
            "resnet50_fpn_v2": MaskRCNN_ResNet50_FPN_V2_Weights.COCO_V1,
        }
        enum = coco_weights[backbone] if coco else None
        what = (
            f"weights='coco' for mask_rcnn {backbone} ({enum.url})"
            if enum
            else f"weights_backbone='imagenet' ({ResNet50_Weights.IMAGENET1K_V1.url})"
        )
        layout = weights_backbone == _LAYOUT
        with download_guard(what, "download.pytorch.org", torch_cache_dir()):
            model = builder(
                weights=enum,
                weights_backbone=bb_enum,
                num_classes=91 if coco else num_classes,
                # torchvision ignores (and warns about) this without pretrained weights; the layout sets it below
                trainable_backbone_layers=None if layout else trainable_backbone_layers,
                progress=False,
                **kwargs,
            )
        if layout:
            # What torchvision builds for a pretrained backbone: FrozenBatchNorm2d in v1 (v2 keeps BatchNorm2d),
            # the last 3 stages trainable by default.
            layers = 3 if trainable_backbone_layers is None else trainable_backbone_layers
            _freeze_backbone(model, layers, frozen_norm=backbone == "resnet50_fpn")
        return model
    # MobileNetV3-Large and the light ResNets: no COCO mask weights exist.
    if coco:
        raise ValueError(
            f"mask_rcnn: torchvision has no COCO Mask R-CNN weights for backbone={backbone!r}; "
            "use backbone='resnet50_fpn' or 'resnet50_fpn_v2', or weights='/path/to/checkpoint.pt'"
        )
    if backbone in _LIGHT:
        return _build_light(
            backbone, num_classes, weights_backbone, trainable_backbone_layers, rpn_anchor_sizes, kwargs
        )
    bb_enum2 = MobileNet_V3_Large_Weights.IMAGENET1K_V1 if weights_backbone == "imagenet" else None
    trained = weights_backbone in ("imagenet", _LAYOUT)
    layers = trainable_backbone_layers if trainable_backbone_layers is not None else (3 if trained else 6)
    norm = misc_nn_ops.FrozenBatchNorm2d if trained else nn.BatchNorm2d
    with download_guard(
        f"weights_backbone='imagenet' ({MobileNet_V3_Large_Weights.IMAGENET1K_V1.url})",
        "download.pytorch.org",
        torch_cache_dir(),
    ):
        net = mobilenet_v3_large(weights=bb_enum2, progress=False, norm_layer=norm)
    body = _mobilenet_extractor(net, True, layers)
    # One level's list of sizes, shared by the 3 levels (a flat list of ints, as before).
    level_sizes = tuple(int(s) for s in (rpn_anchor_sizes or (32, 64, 128, 256, 512)) if not isinstance(s, Sequence))
    if len(level_sizes) != len(rpn_anchor_sizes or level_sizes):
        raise ValueError(f"mask_rcnn: mobilenet_v3_large takes one flat list of anchor sizes, got {rpn_anchor_sizes}")
    anchors = AnchorGenerator((level_sizes,) * 3, ((0.5, 1.0, 2.0),) * 3)
    return MaskRCNN(body, num_classes, rpn_anchor_generator=anchors, **kwargs)


def _build_light(
    backbone: str,
    num_classes: int,
    weights_backbone: str | None,
    trainable_backbone_layers: int | None,
    rpn_anchor_sizes: Sequence[int | Sequence[int]] | None,
    kwargs: dict[str, Any],
) -> MaskRCNN:
    """ResNet-18/34 FPN Mask R-CNN sized for small images and CPUs.

    Compared with ResNet-50 FPN: the FPN starts at stride 8 (a stride-4 level costs most at small sizes
    and the RoIs of small images are few), it is ``fpn_channels`` wide (default 128, not 256), the box
    head has two 2*``fpn_channels`` layers (not 1024) and the mask head two convolutions (not four).
    """
    from torchvision.models import resnet18, resnet34
    from torchvision.models.detection import MaskRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.backbone_utils import BackboneWithFPN
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
    from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
    from torchvision.ops import MultiScaleRoIAlign
    from torchvision.ops import misc as misc_nn_ops
    from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

    channels = int(kwargs.pop("fpn_channels", None) or 128)
    sizes = _level_sizes(rpn_anchor_sizes or _LIGHT_ANCHORS, 4, backbone)
    make, enum = (resnet18 if backbone == "resnet18_fpn" else resnet34), _imagenet(backbone)
    trained = weights_backbone == "imagenet"
    frozen = trained or weights_backbone == _LAYOUT
    layers = trainable_backbone_layers if trainable_backbone_layers is not None else (3 if frozen else 5)
    norm = misc_nn_ops.FrozenBatchNorm2d if frozen else nn.BatchNorm2d
    with download_guard(f"weights_backbone='imagenet' ({enum.url})", "download.pytorch.org", torch_cache_dir()):
        net = make(weights=enum if trained else None, progress=False, norm_layer=norm)
    trainable = ["layer4", "layer3", "layer2", "layer1", "conv1", "bn1"][: layers + (layers == 5)]
    for name, param in net.named_parameters():
        if not any(name.startswith(t) for t in trainable):
            param.requires_grad_(False)
    widths = [net.layer2[0].conv1.out_channels, net.layer3[0].conv1.out_channels, net.layer4[0].conv1.out_channels]
    body = BackboneWithFPN(
        net, {"layer2": "0", "layer3": "1", "layer4": "2"}, widths, channels, extra_blocks=LastLevelMaxPool()
    )
    names = ["0", "1", "2"]
    hidden = 2 * channels
    return MaskRCNN(
        body,
        None,
        rpn_anchor_generator=AnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * len(sizes)),
        box_roi_pool=MultiScaleRoIAlign(names, 7, 2),
        box_head=TwoMLPHead(channels * 7 * 7, hidden),
        box_predictor=FastRCNNPredictor(hidden, num_classes),
        mask_roi_pool=MultiScaleRoIAlign(names, 14, 2),
        mask_head=MaskRCNNHeads(channels, [channels, channels], 1),
        mask_predictor=MaskRCNNPredictor(channels, channels, num_classes),
        **kwargs,
    )


def _level_sizes(sizes: Sequence[Any], levels: int, backbone: str) -> tuple[tuple[int, ...], ...]:
    """Anchor sizes per FPN level: each entry a size or a list of sizes (the same count on every level, since
    the RPN head predicts a fixed number of anchors per location)."""
    per_level = tuple(tuple(int(x) for x in s) if isinstance(s, Sequence) else (int(s),) for s in sizes)
    if len(per_level) != levels:
        raise ValueError(
            f"mask_rcnn: rpn_anchor_sizes needs one size per FPN level ({levels} for {backbone}), got {list(sizes)}"
        )
    if len({len(s) for s in per_level}) != 1 or not per_level[0]:
        raise ValueError(
            f"mask_rcnn: rpn_anchor_sizes gives each level the same number of sizes (one RPN head for all levels), "
            f"got {[list(s) for s in per_level]}"
        )
    return per_level


def _freeze_backbone(model: MaskRCNN, trainable_layers: int, frozen_norm: bool = True) -> None:
    """Freeze all but the last ``trainable_layers`` stages of the ResNet body (torchvision's
    ``_resnet_fpn_extractor`` rule) and, with ``frozen_norm``, swap its BatchNorm for FrozenBatchNorm2d."""
    if not 0 <= trainable_layers <= 5:
        raise ValueError(f"mask_rcnn: trainable_backbone_layers must be in [0, 5], got {trainable_layers}")
    from torchvision.ops import misc as misc_nn_ops

    body = model.backbone.body
    for module in list(body.modules()) if frozen_norm else []:
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.BatchNorm2d):
                setattr(module, child_name, misc_nn_ops.FrozenBatchNorm2d(child.num_features))
    trainable = ["layer4", "layer3", "layer2", "layer1", "conv1"][:trainable_layers]
    if trainable_layers == 5:
        trainable.append("bn1")
    for name, param in body.named_parameters():
        if all(not name.startswith(layer) for layer in trainable):
            param.requires_grad_(False)


def _load_backbone_file(model: MaskRCNN, path: str | Path, backbone: str) -> None:
    """Load a torchvision ImageNet classification state dict into the backbone body, as ``weights_backbone=
    "imagenet"`` loads torchvision's file: the classifier (``fc.*``, ``classifier.*``) is not part of the body
    and FrozenBatchNorm2d keeps no ``num_batches_tracked``; every body tensor must be in the file."""
    source = str(path)
    state = model_weights(load_checkpoint(path), None, source=source)
    body = model.backbone.body
    own = body.state_dict()
    # The MobileNet body is the network's `features`; a whole-model file stores the body under `backbone.body.`.
    best = dict(state)
    for prefix in ("features.", "backbone.body.", "module."):
        renamed = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        if sum(k in own for k in renamed) > sum(k in own for k in best):
            best = renamed
    fitting = {
        k: v
        for k, v in best.items()
        if k in own or not (k.startswith(("fc.", "classifier.")) or k.endswith("num_batches_tracked"))
    }
    problems = mismatch_report(own, fitting)
    if problems:
        expected = _imagenet(backbone).url.rsplit("/", 1)[-1]
        raise CheckpointError(
            f"mask_rcnn: weights_backbone={source} does not fit backbone {backbone!r}, which takes a torchvision "
            f"ImageNet state dict such as {expected} (a file of another network?): {problems}"
        )
    body.load_state_dict(fitting)


@MODELS.register("mask_rcnn")
def mask_rcnn(
    num_classes: int = 91,
    backbone: str = "resnet50_fpn",
    weights: str | Path | None = None,
    weights_backbone: str | Path | None = None,
    trainable_backbone_layers: int | None = None,
    box_score_thresh: float = 0.05,
    box_nms_thresh: float = 0.5,
    box_detections_per_img: int = 100,
    rpn_anchor_sizes: Sequence[int | Sequence[int]] | None = None,
    min_size: int = 800,
    max_size: int = 1333,
    class_names: Sequence[str] | None = None,
    fpn_channels: int | None = None,
    roi_sampling_ratio: int | None = None,
    weights_key: str | None = None,
    **options: Any,
) -> nn.Module:
    """Mask R-CNN (He et al. 2017) from torchvision, with the interface of torchvision's model unchanged.

    Input convention: like every segkit model, it takes images already normalised with the ImageNet
    mean and std (what segkit datasets yield and ``Predictor`` feeds), so torchvision's internal
    normalisation is set to the identity (``image_mean=0``, ``image_std=1``); COCO weights see the
    same numbers as in torchvision. To feed torchvision-style ``[0, 1]`` images instead, pass
    ``image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD`` (``Predictor`` notices and feeds ``[0, 1]``).

    Train mode: ``model(images, targets)`` with a list of ``(3, H, W)`` normalised float images and a list
    of target dicts (``boxes``, ``labels``, ``masks``) returns a dict of losses. Eval mode:
    ``model(images)`` returns a list of dicts ``boxes (K, 4)``, ``labels (K,)``, ``scores (K,)``,
    ``masks (K, 1, H, W)``. The options mirror Matterport's config names:

    Args:
        num_classes: classes including background (91 for COCO).
        backbone: "resnet50_fpn" (v1), "resnet50_fpn_v2" (improved recipe), "mobilenet_v3_large" (FPN, lighter),
            or "resnet18_fpn" / "resnet34_fpn": light variants for small images and CPUs (FPN on strides 8-32
            plus a pooled level, ``fpn_channels`` wide, two-layer box and mask heads; no COCO weights).
        weights: None (random init), "coco" (torchvision's COCO weights, downloaded once to the torch
            cache when online; a different ``num_classes`` replaces the box and mask predictors and keeps the
            rest), or a path to a local checkpoint (segkit checkpoint or plain state dict; its class count
            is read from the predictor, which is replaced the same way when it differs, and one line on
            stderr names the tensors not loaded; a segkit checkpoint gives its EMA weights when it kept
            them, the weights that chose ``best.pt``, as for every segkit model).
        weights_backbone: ImageNet backbone when ``weights`` is None: None (random init), "imagenet"
            (torchvision's ImageNet file, downloaded once to the torch cache when online) or a path to that
            file copied from an online machine (``resnet50-0676ba61.pth`` for the resnet50 variants,
            ``resnet18-f37072fd.pth``, ``resnet34-b627a593.pth``, ``mobilenet_v3_large-8738ca79.pth``; see
            docs/models.md). Either way the body gets torchvision's pretrained layout: frozen BatchNorm (not in
            ``resnet50_fpn_v2``, as in torchvision) and the last 3 stages trainable unless
            ``trainable_backbone_layers`` says otherwise. A file that does not fit is a ``CheckpointError``
            naming the missing and unexpected keys.
        trainable_backbone_layers: backbone stages left trainable (torchvision's default when None).
        box_score_thresh: DETECTION_MIN_CONFIDENCE: detections scoring below are dropped.
        box_nms_thresh: DETECTION_NMS_THRESHOLD: per-class NMS IoU threshold.
        box_detections_per_img: DETECTION_MAX_INSTANCES.
        rpn_anchor_sizes: RPN_ANCHOR_SCALES, one size per FPN level (5 for ResNet-50 FPN, default 32-512;
            4 for the ResNet-18/34 variants, default 32-256; the MobileNet variant uses all sizes on each of
            its 3 levels). A level's entry may be a list of sizes (e.g. ``[[12, 20], [28, 40], [56, 80],
            [112, 160]]``: finer scales for small objects), the same count on every level.
        min_size: IMAGE_MIN_DIM: images are resized so their short side is this.
        max_size: IMAGE_MAX_DIM: cap on the long side.
        class_names: names by label; defaults to ``COCO_CATEGORIES`` for 91 classes with ``weights="coco"``.
        fpn_channels: FPN and head width of the ResNet-18/34 variants (default 128); the other backbones
            keep torchvision's 256 and refuse this option.
        roi_sampling_ratio: RoIAlign sampling points per bin side in the box and mask heads (None: torchvision's
            2; 1 samples each bin at its centre: 4x fewer bilinear samples, whose CPU backward pass is a large
            part of a small-image training step; 0 adapts to the RoI size).
        weights_key: with ``weights`` a segkit checkpoint: ``"model"`` (the trained weights) or ``"ema"``
            (their moving average); None: ``"ema"`` when the checkpoint holds EMA weights, else ``"model"``.
        **options: further torchvision ``MaskRCNN`` options, passed through (``rpn_post_nms_top_n_train``
            = POST_NMS_ROIS_TRAINING, ``box_batch_size_per_image`` = TRAIN_ROIS_PER_IMAGE,
            ``rpn_batch_size_per_image`` = RPN_TRAIN_ANCHORS_PER_IMAGE, ``image_mean``/``image_std``
            = MEAN_PIXEL (default: identity, see the input convention above), ...).

    Returns:
        The torchvision ``MaskRCNN``, with ``class_names`` (list or None) set.
    """
    if backbone not in BACKBONES:
        raise ValueError(f"mask_rcnn: backbone must be one of {', '.join(BACKBONES)}, got {backbone!r}")
    if fpn_channels is not None and backbone not in _LIGHT:
        raise ValueError(f"mask_rcnn: fpn_channels is an option of {', '.join(_LIGHT)} only, not of {backbone!r}")
    backbone_file = None
    if weights_backbone not in (None, "imagenet"):
        if not is_weights_file(weights_backbone):
            raise ValueError(
                "mask_rcnn: weights_backbone must be None, 'imagenet' or the path to a torchvision ImageNet "
                f"state dict (e.g. {_imagenet(backbone).url.rsplit('/', 1)[-1]}), got {weights_backbone!r}"
            )
        backbone_file = weights_backbone
    # The images arrive ImageNet-normalised (segkit's convention): normalising again inside would
    # shift them twice, so the internal transform only resizes unless the caller asks otherwise.
    options.setdefault("image_mean", [0.0, 0.0, 0.0])
    options.setdefault("image_std", [1.0, 1.0, 1.0])
    kwargs: dict[str, Any] = dict(
        box_score_thresh=box_score_thresh,
        box_nms_thresh=box_nms_thresh,
        box_detections_per_img=box_detections_per_img,
        min_size=min_size,
        max_size=max_size,
        **options,
    )
    if fpn_channels is not None:
        kwargs["fpn_channels"] = fpn_channels
    coco = weights == "coco"
    state: dict[str, torch.Tensor] | None = None
    names = list(class_names) if class_names is not None else None
    build_classes = num_classes
    if weights_key is not None and (weights is None or coco):
        raise ValueError(f"mask_rcnn: weights_key chooses the weights of a checkpoint file; weights is {weights!r}")
    if weights is not None and not coco:
        ckpt = load_checkpoint(weights)
        # The one rule of every segkit model: the EMA weights when the run kept them (they chose best.pt).
        state = dict(model_weights(ckpt, weights_key, source=str(weights)))
        key = "roi_heads.box_predictor.cls_score.weight"
        if key not in state:
            raise ValueError(f"mask_rcnn: {weights} is not a Mask R-CNN checkpoint (no {key!r})")
        build_classes = int(state[key].shape[0])
        if names is None and build_classes == num_classes and ckpt.get("class_names"):
            names = list(ckpt["class_names"])
    backbone_init = _LAYOUT if backbone_file is not None else ("imagenet" if weights_backbone else None)
    if coco:
        backbone_init = None
    elif state is not None:
        # Saved from a pretrained (frozen-BN) model such as torchvision's COCO weights: match its layout and,
        # like torchvision, leave only the last 3 stages trainable.
        frozen = not any(k.startswith("backbone.body.") and k.endswith("num_batches_tracked") for k in state)
        backbone_init = _LAYOUT if frozen else None
    model = _build(
        backbone,
        build_classes,
        coco,
        backbone_init,
        trainable_backbone_layers,
        rpn_anchor_sizes,
        kwargs,
    )
    if state is not None:
        load_state_dict_checked(model, state, source=str(weights))
    elif backbone_file is not None and not coco:
        _load_backbone_file(model, backbone_file, backbone)
    loaded_classes = 91 if coco else build_classes
    if loaded_classes != num_classes:
        replace_predictors(model, num_classes)
        if state is not None:
            heads = [k for k in state if k.startswith(("roi_heads.box_predictor.", "roi_heads.mask_predictor."))]
            _log.warning(
                f"weights {weights}: {len(state) - len(heads)} tensors loaded; new box and mask predictors for "
                f"{num_classes} classes (the file has {loaded_classes}), not loaded: {', '.join(heads)}"
            )
    if roi_sampling_ratio is not None:
        if int(roi_sampling_ratio) < 0:
            raise ValueError(f"mask_rcnn: roi_sampling_ratio must be >= 0, got {roi_sampling_ratio}")
        model.roi_heads.box_roi_pool.sampling_ratio = int(roi_sampling_ratio)
        model.roi_heads.mask_roi_pool.sampling_ratio = int(roi_sampling_ratio)
    if names is None and coco and num_classes == 91:
        names = __getattr__("COCO_CATEGORIES")
    model.class_names = names
    return model
