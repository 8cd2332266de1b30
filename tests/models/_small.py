"""Cheap constructor arguments per registered semantic model, shared by the model tests."""

from __future__ import annotations

from typing import Any

from segkit.models import MODELS

# Tiny decoders on resnet18 (or a narrow VGG for SegNet) keep every model at a fraction of a second per
# step; a model missing here is still tested, with its defaults.
SMALL: dict[str, dict[str, Any]] = {
    "unet": {"encoder": "resnet18", "decoder_channels": (16, 8, 8, 8, 8)},
    "unetplusplus": {"encoder": "resnet18", "decoder_channels": (16, 8, 8, 8, 8)},
    "fpn": {
        "encoder": "resnet18",
        "decoder_pyramid_channels": 32,
        "decoder_segmentation_channels": 32,
    },  # GroupNorm(32)
    "pspnet": {"encoder": "resnet18", "psp_out_channels": 16},
    "linknet": {"encoder": "resnet18"},
    "manet": {"encoder": "resnet18", "decoder_channels": (16, 8, 8, 8, 8), "decoder_pab_channels": 8},
    "pan": {"encoder": "resnet18", "decoder_channels": 16},
    "upernet": {"encoder": "resnet18", "decoder_channels": 16},
    "segformer": {"encoder": "resnet18", "decoder_segmentation_channels": 16},
    "deeplabv3": {"encoder": "resnet18", "decoder_channels": 16, "encoder_output_stride": 16},
    "deeplabv3plus": {"encoder": "resnet18", "decoder_channels": 16},
    "fastfcn": {"encoder": "resnet18", "jpu_channels": 16},
    "segnet": {"base_width": 8},
    "gated_scnn": {"encoder": "resnet18", "aspp_channels": 16, "output_stride": 16},
}

# Detection models have their own interface and tests (test_mask_rcnn.py).
SEMANTIC = [n for n in MODELS.names() if n != "mask_rcnn"]
