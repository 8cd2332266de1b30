"""The shipped VOC and COCO configs run as shipped (batch size, no crops) on photos of different sizes."""

from pathlib import Path

import numpy as np
import torch

from segkit import Trainer
from segkit.config import load_config
from segkit.datasets import build_dataset
from segkit.metrics import ConfusionMatrix
from tests.engine._varied import write_varied_coco, write_varied_voc

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_voc_deeplabv3plus_config_trains_on_images_of_different_sizes(tmp_path, capsys):
    """Batch 16 without crops (the config's recipe) on a VOC tree whose photos differ in size; 5 train images
    at batch 4 also leave a last batch of one, which DeepLab's BatchNorm cannot train on."""
    write_varied_voc(tmp_path / "voc")
    overrides = [f"data.root={tmp_path / 'voc' / 'VOCdevkit'}", "model.encoder=resnet18", "model.encoder_weights=null",
                 "train.epochs=1", "train.workers=0", "train.batch_size=4", f"train.out_dir={tmp_path / 'run'}"]  # fmt: skip
    cfg = load_config(CONFIGS / "voc_deeplabv3plus.yaml", overrides)
    assert cfg.data.name == "voc_aug" and cfg.train.amp == "auto" and cfg.model.params["encoder_output_stride"] == 16
    trainer = Trainer.from_config(cfg)
    metrics = trainer.fit()
    assert np.isfinite(metrics["train/loss"]) and 0.0 <= metrics["val/miou"] <= 1.0
    assert trainer.batches_per_epoch == 1  # 5 images at batch 4: the 5th dropped
    out = capsys.readouterr().out
    assert "images of different sizes in a batch: padded to" in out and "dropped" in out
    # The report (confusion matrix, worst images) reads the same varied-size validation split.
    from segkit.viz.report import evaluate_run

    result = evaluate_run(tmp_path / "run", checkpoint="last.pt", num_worst=4, device="cpu")
    masks = _val_masks(tmp_path / "voc")
    assert int(result["confusion"].mat.sum()) == sum(int((m != 255).sum()) for m in masks)
    # Predicted in batches of different sizes = each image alone (independent of the padding).
    val = build_dataset("voc_aug", root=tmp_path / "voc" / "VOCdevkit", split="val")
    alone = ConfusionMatrix(21, 255)
    for i, mask in enumerate(masks):
        pred = result["predictor"].predict(val[i]["image"].contiguous()[None])
        alone.update(pred.cpu(), torch.from_numpy(mask.astype(np.int64))[None])
    assert torch.equal(result["confusion"].mat.cpu(), alone.mat.cpu())
    shapes = sorted(tuple(target.shape) for _, image, target, pred, _ in result["worst"])
    assert shapes == sorted([(40, 56), (72, 64), (64, 100), (33, 47)])  # each image at its own size
    for _, image, target, pred, _ in result["worst"]:
        assert image.shape[:2] == target.shape == pred.shape


def _val_masks(root):
    from PIL import Image

    voc = root / "VOCdevkit" / "VOC2012"
    ids = (voc / "ImageSets" / "Segmentation" / "val.txt").read_text().split()
    return [np.asarray(Image.open(voc / "SegmentationClass" / f"{i}.png")) for i in ids]


def test_coco_maskrcnn_config_trains_on_images_of_different_sizes(tmp_path):
    """The shipped config with the light resnet18_fpn backbone (resnet50_fpn runs too, in ~15 s on 2 CPU
    cores: too slow for the suite); batch 2, images of three sizes (3 images: a last batch of one)."""
    write_varied_coco(tmp_path / "coco")
    overrides = [f"data.root={tmp_path / 'coco'}", "model.backbone=resnet18_fpn", "model.weights_backbone=null",
                 "model.min_size=64", "model.max_size=96", "train.epochs=1", "train.workers=0",
                 "train.warmup_iters=1", f"train.out_dir={tmp_path / 'run'}"]  # fmt: skip
    cfg = load_config(CONFIGS / "coco_maskrcnn.yaml", overrides)
    assert cfg.train.task == "instance" and cfg.train.batch_size == 2
    metrics = Trainer.from_config(cfg).fit()
    assert np.isfinite(metrics["train/loss"]) and "val/segm_ap" in metrics
