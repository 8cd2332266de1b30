"""Mask R-CNN inference, the article's walkthrough: build, predict, draw instances, raise the confidence threshold.

Runs offline::

    python examples/maskrcnn_inference.py                 # COCO weights if cached, else train on shapes
    python examples/maskrcnn_inference.py --coco photo.jpg street.jpg   # download COCO weights (online)
    python examples/maskrcnn_inference.py --checkpoint runs/shapes_maskrcnn/best.pt
    python examples/maskrcnn_inference.py --quick         # tiny model, one step (used by the tests)

Where the model comes from, in order: ``--checkpoint`` (a segkit checkpoint, rebuilt with
``Predictor.from_checkpoint``); torchvision's COCO-pretrained weights (``weights="coco"``, 91 COCO
category names) when they are in the torch cache or ``--coco`` allows the download; otherwise a light
Mask R-CNN trained here on the built-in ``shapes`` instance data with ``configs/shapes_maskrcnn.yaml``
through the Trainer (``task="instance"``).

The article raises ``DETECTION_MIN_CONFIDENCE`` in an ``InferenceConfig`` subclass to drop a wrong
detection. Here ``InferenceConfig`` below maps the same names onto the model
(``box_score_thresh``, as in ``build_model("mask_rcnn", box_score_thresh=0.9)``), and
``Predictor(min_confidence=...)`` / ``predict(..., min_confidence=...)`` filters per call; the script
prints how many instances each threshold keeps.

For your own photos pass their paths (``--coco`` or a checkpoint of your classes). To fine-tune on your
data, train with a ``coco``-format dataset and ``weights: coco`` (pretrained; new box and mask heads for
your class count), e.g. ``segkit train --config configs/coco_maskrcnn.yaml``.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image
from torch import nn

from segkit import Predictor, Trainer
from segkit.config import config_from_dict
from segkit.datasets.shapes import write_images
from segkit.inference import read_image
from segkit.models import build_model
from segkit.models._utils import WeightsUnavailableError
from segkit.viz import draw_instances, save_figure

CONFIG_FILE = Path(__file__).resolve().parents[1] / "configs" / "shapes_maskrcnn.yaml"

# --quick: 64 px images, 8 training images, one step, few proposals; no validation.
QUICK = {
    "model": {
        "min_size": 64,
        "max_size": 64,
        "fpn_channels": 32,
        "rpn_pre_nms_top_n_train": 100,
        "rpn_post_nms_top_n_train": 30,
        "rpn_pre_nms_top_n_test": 100,
        "rpn_post_nms_top_n_test": 30,
        "box_batch_size_per_image": 16,
        "box_detections_per_img": 10,
    },
    "data": {"image_size": 64, "train": {"split": "train", "num_images": 4}, "val": None},
    "train": {"epochs": 1, "batch_size": 4, "warmup_iters": 0, "log_every": 1},
}


@dataclass
class InferenceConfig:
    """The article's Matterport-style inference settings, mapped onto torchvision's Mask R-CNN.

    Attributes:
        detection_min_confidence: DETECTION_MIN_CONFIDENCE (``box_score_thresh``).
        detection_max_instances: DETECTION_MAX_INSTANCES (``box_detections_per_img``).
        detection_nms_threshold: DETECTION_NMS_THRESHOLD (``box_nms_thresh``).
    """

    detection_min_confidence: float = 0.7
    detection_max_instances: int = 100
    detection_nms_threshold: float = 0.5

    def apply(self, model: nn.Module) -> nn.Module:
        """Set the thresholds on a built model (what ``build_model(..., box_score_thresh=...)`` does at build time)."""
        heads: Any = model.roi_heads
        heads.score_thresh = self.detection_min_confidence
        heads.detections_per_img = self.detection_max_instances
        heads.nms_thresh = self.detection_nms_threshold
        return model


def coco_weights_cached() -> bool:
    """True when torchvision's COCO Mask R-CNN weights are already in the torch cache (no download needed)."""
    import torch
    from torchvision.models.detection import MaskRCNN_ResNet50_FPN_Weights

    name = os.path.basename(MaskRCNN_ResNet50_FPN_Weights.COCO_V1.url)
    return os.path.isfile(os.path.join(torch.hub.get_dir(), "checkpoints", name))


def train_on_shapes(out: Path, quick: bool) -> Path:
    """Train the light Mask R-CNN of ``configs/shapes_maskrcnn.yaml`` and return its checkpoint."""
    raw = yaml.safe_load(CONFIG_FILE.read_text())
    if quick:
        for block, values in QUICK.items():
            raw[block].update(values)
    raw["train"]["out_dir"] = str(out / "run")
    raw["train"]["device"] = "cpu" if quick else "auto"
    trainer = Trainer.from_config(config_from_dict(raw))
    metrics = trainer.fit()
    if "val/segm_ap50" in metrics:
        print(f"shapes val: segm AP50 {metrics['val/segm_ap50']:.3f}, bbox AP50 {metrics['val/bbox_ap50']:.3f}")
    best = out / "run" / "best.pt"
    return best if best.is_file() else out / "run" / "last.pt"


def load_predictor(args: argparse.Namespace, out: Path, low: float) -> tuple[Predictor, str]:
    """The predictor and a word saying where its weights came from."""
    if args.checkpoint:
        return Predictor.from_checkpoint(args.checkpoint, min_confidence=low), "checkpoint"
    if not args.quick and (args.coco or coco_weights_cached()):
        try:
            model = build_model("mask_rcnn", weights="coco", box_score_thresh=low)  # 91 COCO classes, named
            return Predictor(model, min_confidence=low), "coco"
        except WeightsUnavailableError as exc:  # offline and not cached: say so, then train on shapes
            print(f"{exc}\nFalling back to a Mask R-CNN trained on the built-in shapes data.")
    return Predictor.from_checkpoint(train_on_shapes(out, args.quick), min_confidence=low), "shapes"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Predict, draw, and count instances per confidence threshold; return the counts and the files written."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="*", help="image files (default: held-out shapes images)")
    parser.add_argument("--checkpoint", help="a segkit Mask R-CNN checkpoint")
    parser.add_argument("--coco", action="store_true", help="download torchvision's COCO weights if not cached")
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.05, 0.3, 0.5, 0.7, 0.9])
    parser.add_argument("--quick", action="store_true", help="tiny model, one training step (for tests)")
    parser.add_argument("--out", default="runs/maskrcnn_inference", help="output folder")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    thresholds = sorted(args.thresholds)

    # 1. the model, its detection threshold at the lowest value we want to look at.
    predictor, source = load_predictor(args, out, thresholds[0])
    print(f"model: Mask R-CNN, weights from {source}, classes {predictor.class_names}")

    # 2. images: yours, or shapes images the model never saw, written as PNG files like photos.
    size = QUICK["data"]["image_size"] if args.quick else 96
    paths = args.images or write_images(str(out / "images"), count=2 if args.quick else 4, image_size=size)
    images = [read_image(p) for p in paths]
    detections = predictor.predict(images)  # one Instances per image: boxes, labels, names, scores, masks

    # 3. draw each instance (mask, outline, box, "name score") at the lowest and the highest threshold.
    figures = []
    for path, image, inst in zip(paths, images, detections):
        stem = Path(path).stem
        for t in (thresholds[0], thresholds[-1]):
            drawn = draw_instances(image, inst, min_score=t)
            figures.append(out / f"{stem}_min{t:.2f}.png")
            Image.fromarray(drawn).save(figures[-1])
        fig = draw_instances(image, inst, figure=True, title=f"{stem}: {len(inst)} instances")
        figures.append(save_figure(fig, out / f"{stem}_figure.png"))

    # 4. the article's InferenceConfig: raise DETECTION_MIN_CONFIDENCE and count what is left.
    counts = {t: sum(len(inst.filter(t)) for inst in detections) for t in thresholds}
    strict = InferenceConfig(detection_min_confidence=thresholds[-1])
    strict_model = strict.apply(predictor.model)
    strict_count = sum(len(i) for i in Predictor(strict_model, min_confidence=0.0).predict(images))
    print(f"\n{'min_confidence':>14}  instances ({len(images)} images)")
    for t, n in counts.items():
        print(f"{t:>14.2f}  {n}")
    print(f"InferenceConfig(detection_min_confidence={strict.detection_min_confidence}): {strict_count} instances")
    print("wrote", *[str(p) for p in figures], sep="\n  ")
    first = detections[0]
    if len(first):
        print("first image:", ", ".join(f"{n} {s:.2f}" for n, s in zip(first.names, first.scores)))
    return {
        "source": source,
        "counts": counts,
        "strict_count": strict_count,
        "detections": detections,
        "figures": figures,
        "images": [np.asarray(i) for i in images],
    }


if __name__ == "__main__":
    main()
