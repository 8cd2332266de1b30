"""shapes instance augmentation from a config mapping: flips and scale jitter move boxes and masks with the image."""

from __future__ import annotations

import numpy as np
import torch

from segkit.datasets import build_dataset


def _tight_boxes(masks: torch.Tensor) -> torch.Tensor:
    boxes = []
    for m in masks.bool():
        ys, xs = torch.nonzero(m, as_tuple=True)
        boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    return torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)


def test_hflip_mirrors_image_masks_and_boxes() -> None:
    plain = build_dataset("shapes", split="train", num_images=3, image_size=(64, 80), task="instance")
    flip = build_dataset("shapes", split="train", num_images=3, image_size=(64, 80), task="instance",
                         transforms={"hflip": 1.0, "scale": [1.0, 1.0], "color_jitter": 0.0})  # fmt: skip
    for i in range(3):
        a, b = plain[i], flip[i]
        assert b["image"].shape == (3, 64, 80)
        torch.testing.assert_close(b["image"], a["image"].flip(-1), atol=1e-5, rtol=0)
        assert torch.equal(b["target"]["masks"], a["target"]["masks"].flip(-1))
        boxes = a["target"]["boxes"]
        mirrored = torch.stack([80 - boxes[:, 2], boxes[:, 1], 80 - boxes[:, 0], boxes[:, 3]], 1)
        assert torch.equal(b["target"]["boxes"], mirrored)
        assert torch.equal(b["target"]["labels"], a["target"]["labels"])


def test_scale_jitter_keeps_padding_out_of_instances() -> None:
    """Shrunk images are padded (mask 255): no instance pixel lies there; boxes and areas follow the masks."""
    ds = build_dataset("shapes", split="train", num_images=6, image_size=64, task="instance", max_objects=4,
                       transforms={"scale": [0.5, 0.6], "hflip": 0.5, "color_jitter": 0.0})  # fmt: skip
    for i in range(len(ds)):
        s = ds[i]
        t = s["target"]
        assert s["image"].shape == (3, 64, 64)
        padding = s["mask"] == 255
        assert padding.any()
        assert not (t["masks"].bool() & padding).any()
        assert len(t["labels"]) == len(t["masks"]) == len(t["boxes"]) and len(t["labels"]) >= 1
        torch.testing.assert_close(t["boxes"], _tight_boxes(t["masks"]))
        torch.testing.assert_close(t["area"], t["masks"].flatten(1).sum(1).float())
        assert set(np.unique(t["masks"].numpy())) <= {0, 1}


def test_eval_preset_mapping_needs_no_crop_size() -> None:
    plain = build_dataset("shapes", split="val", num_images=1, image_size=48, task="instance")
    ds = build_dataset("shapes", split="val", num_images=1, image_size=48, task="instance",
                       transforms={"preset": "eval"})  # fmt: skip
    torch.testing.assert_close(ds[0]["image"], plain[0]["image"])
