"""`segkit predict` with --tta / --window / --min-confidence on hand-written checkpoints (no training)."""

import json

import numpy as np
import torch
from PIL import Image

from segkit.checkpoint import save_checkpoint
from segkit.cli import main
from segkit.inference import Predictor
from segkit.models import MODELS, build_model

NAMES = ["background", "circle", "square", "triangle"]
PALETTE = [[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]]


def _write_images(folder, sizes):
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate(sizes):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / f"img{i}.png")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")


def test_predict_semantic_with_tta_and_window(tmp_path, capsys):
    cfg = {"name": "unet", "encoder": "resnet18", "decoder_channels": [16, 16, 8, 8, 8], "num_classes": 4}
    model = build_model(**cfg)
    ckpt = save_checkpoint(
        {
            "model": model.state_dict(),
            "config": {"model": cfg},
            "num_classes": 4,
            "class_names": NAMES,
            "palette": PALETTE,
        },
        tmp_path / "best.pt",
    )
    _write_images(tmp_path / "images", [(40, 56), (20, 24)])
    args = [
        "predict",
        "--checkpoint",
        str(ckpt),
        str(tmp_path / "images"),
        "--out",
        str(tmp_path / "out"),
        "--tta",
        "--window",
        "32",
        "--device",
        "cpu",
        "--quiet",
    ]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "broken.jpg" in captured.err and "wrote 2 overlays" in captured.out
    mask = Image.open(tmp_path / "out" / "img0_mask.png")
    assert mask.mode == "P" and mask.size == (56, 40)
    assert mask.getpalette()[:12] == sum(PALETTE, [])
    expected = Predictor.from_checkpoint(ckpt, device="cpu", tta=True, window=32).predict(
        tmp_path / "images" / "img0.png"
    )
    np.testing.assert_array_equal(np.asarray(mask), expected)
    assert Image.open(tmp_path / "out" / "img1_overlay.png").size == (24, 20)


def _tiny_maskrcnn(num_classes: int = 4):
    """A torchvision MaskRCNN on a two-conv backbone, registered only for this test."""
    from torch import nn
    from torchvision.models.detection import MaskRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.ops import MultiScaleRoIAlign

    backbone = nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, stride=2, padding=1)
    )
    backbone.out_channels = 16
    return MaskRCNN(
        backbone,
        num_classes=num_classes,
        min_size=64,
        max_size=64,
        box_score_thresh=0.0,
        box_detections_per_img=10,
        rpn_pre_nms_top_n_test=50,
        rpn_post_nms_top_n_test=20,
        rpn_anchor_generator=AnchorGenerator(((8, 16, 32),), ((0.5, 1.0, 2.0),)),
        box_roi_pool=MultiScaleRoIAlign(["0"], 7, 2),
        mask_roi_pool=MultiScaleRoIAlign(["0"], 14, 2),
    )


def test_predict_instances_respects_min_confidence(tmp_path, capsys, monkeypatch):
    # Registered for this test only, so the registry-driven tests elsewhere never see it.
    monkeypatch.setitem(MODELS._entries, "_test_tiny_maskrcnn", _tiny_maskrcnn)
    torch.manual_seed(0)
    model = _tiny_maskrcnn()
    ckpt = save_checkpoint(
        {
            "model": model.state_dict(),
            "config": {"model": {"name": "_test_tiny_maskrcnn"}},
            "num_classes": 4,
            "class_names": NAMES,
            "palette": PALETTE,
        },
        tmp_path / "best.pt",
    )
    _write_images(tmp_path / "images", [(48, 64)])
    base = ["predict", "--checkpoint", str(ckpt), str(tmp_path / "images"), "--device", "cpu", "--quiet"]
    assert main([*base, "--out", str(tmp_path / "all"), "--min-confidence", "0"]) == 0
    everything = json.loads((tmp_path / "all" / "img0_instances.json").read_text())
    assert len(everything["scores"]) > 0 and set(everything["names"]) <= set(NAMES[1:])
    ranked = sorted(set(everything["scores"]))
    cut = (ranked[len(ranked) // 2 - 1] + ranked[len(ranked) // 2]) / 2 if len(ranked) > 1 else ranked[0] / 2
    assert main([*base, "--out", str(tmp_path / "cut"), "--min-confidence", str(cut)]) == 0
    kept = json.loads((tmp_path / "cut" / "img0_instances.json").read_text())
    assert len(kept["scores"]) == sum(s >= cut for s in everything["scores"]) and min(kept["scores"]) >= cut
    mask = Image.open(tmp_path / "cut" / "img0_mask.png")
    assert mask.mode == "P" and mask.size == (64, 48)
    assert "broken.jpg" in capsys.readouterr().err
