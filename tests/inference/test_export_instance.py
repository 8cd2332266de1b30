"""ONNX export of Mask R-CNN: onnxruntime reproduces PyTorch's detections at the traced and at other image
sizes; ``segkit export`` of an instance checkpoint writes a file that the onnxruntime-only script of
docs/deploy.md runs (torch unimportable) to the detections ``Predictor`` finds."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from segkit.checkpoint import save_checkpoint
from segkit.cli import main
from segkit.datasets import build_dataset
from segkit.datasets.normalization import Normalization
from segkit.datasets.shapes import write_images
from segkit.export import export_onnx
from segkit.export_instance import INSTANCE_OUTPUTS, export_instance_onnx
from segkit.inference import Predictor
from segkit.models import build_model

ort = pytest.importorskip("onnxruntime")  # test-only dependency (in the dev extra)

ROOT = Path(__file__).parents[2]
TRACED = (96, 96)
# A small Mask R-CNN with random weights (training one to real detections takes minutes on 2 cores).
# At score threshold 0.2 an untrained head keeps 40 detections of two classes per shapes image: every
# output is exercised and the sort order is not a tie (adjacent scores differ by >= 8e-5, while
# onnxruntime and PyTorch differ by < 1e-6).
CONFIG = {
    "name": "mask_rcnn",
    "num_classes": 4,
    "backbone": "resnet18_fpn",
    "fpn_channels": 32,
    "rpn_anchor_sizes": [16, 32, 64, 128],
    "min_size": 96,
    "max_size": 96,
    "rpn_pre_nms_top_n_test": 100,
    "rpn_post_nms_top_n_test": 30,
    "box_score_thresh": 0.2,
    "box_detections_per_img": 40,
}
CLASS_NAMES = ["background", "circle", "square", "triangle"]

# Tolerances: float32 arithmetic in another order (onnxruntime's kernels). Measured maxima over 15 shapes
# images at 5 sizes: 5e-5 px (boxes), 3e-7 (scores), 5e-5 (mask probabilities); 20x or more below these.
BOX_ATOL_PX = 1e-3
SCORE_ATOL = 1e-5
MASK_MAX_ABS = 1e-3
MASK_IOU_MIN = 0.99


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    net = build_model(**CONFIG).eval()
    with torch.no_grad():
        # Untrained mask logits sit near 0 (probability 0.5 everywhere); scaled up, masks have a clear
        # inside and outside, so comparing binarised masks means something.
        net.roi_heads.mask_predictor.mask_fcn_logits.weight.mul_(10.0)
    return net


def _onnx(path: Path, image: np.ndarray) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return dict(zip(INSTANCE_OUTPUTS, session.run(list(INSTANCE_OUTPUTS), {"image": image}), strict=True))


def _assert_same_detections(got: dict[str, np.ndarray], expected: dict[str, torch.Tensor]) -> None:
    k = len(expected["scores"])
    assert k >= 10, f"only {k} PyTorch detections: the comparison would say little"
    assert got["boxes"].shape == (k, 4) and got["masks"].shape == tuple(expected["masks"].shape)
    assert got["labels"].dtype == np.int64
    np.testing.assert_array_equal(got["labels"], expected["labels"].numpy())
    np.testing.assert_allclose(got["boxes"], expected["boxes"].numpy(), atol=BOX_ATOL_PX, rtol=0)
    np.testing.assert_allclose(got["scores"], expected["scores"].numpy(), atol=SCORE_ATOL, rtol=0)
    masks = expected["masks"].numpy()
    assert np.abs(got["masks"] - masks).max() < MASK_MAX_ABS
    # Binarised at 0.5, a pixel may flip only where PyTorch's probability is itself within the tolerance
    # of 0.5; over all masks the binary masks agree (IoU of the union of instance pixels).
    ours, theirs = got["masks"] > 0.5, masks > 0.5
    assert np.all(np.abs(masks[ours != theirs] - 0.5) < MASK_MAX_ABS)
    assert (ours & theirs).sum() / (ours | theirs).sum() > MASK_IOU_MIN


def test_onnxruntime_matches_pytorch_at_the_traced_and_other_sizes(model, tmp_path) -> None:
    path = export_onnx(model, tmp_path / "maskrcnn.onnx", TRACED)  # dispatches to the instance export
    images = [
        build_dataset("shapes", task="instance", split="val", num_images=2, image_size=size)[i]["image"]
        for size, i in ((TRACED, 0), (TRACED, 1), ((72, 120), 0))  # 72x120: another size and aspect
    ]
    for image in images:
        with torch.no_grad():
            expected = model([image])[0]
        got = _onnx(path, image.numpy())
        assert got["masks"].shape[2:] == image.shape[1:]  # masks at the input's size
        _assert_same_detections(got, expected)


def test_no_detection_gives_empty_outputs(model, tmp_path) -> None:
    strict = copy.deepcopy(model)
    strict.roi_heads.score_thresh = 1.0  # scores must exceed it: no detection ever
    path = export_instance_onnx(strict, tmp_path / "m.onnx", TRACED)
    got = _onnx(path, np.zeros((3, 80, 64), np.float32))
    assert got["boxes"].shape == (0, 4) and got["labels"].shape == (0,) and got["scores"].shape == (0,)
    assert got["masks"].shape == (0, 1, 80, 64)


def test_cli_export_and_the_onnxruntime_only_script_reproduce_predictor(model, tmp_path, capsys) -> None:
    norm = Normalization.imagenet()
    ckpt = save_checkpoint(
        {
            "model": model.state_dict(),
            "config": {"model": CONFIG},
            "num_classes": 4,
            "class_names": CLASS_NAMES,
            "normalization": norm.to_dict(),
        },
        tmp_path / "best.pt",
    )
    out = tmp_path / "maskrcnn.onnx"
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(out), "--size", "64", "80"]) == 0
    printed = capsys.readouterr().out
    assert "boxes, labels, scores, masks" in printed and "123.675" in printed  # ImageNet mean x 255

    meta = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).get_modelmeta().custom_metadata_map
    assert json.loads(meta["segkit.class_names"]) == CLASS_NAMES
    np.testing.assert_allclose(json.loads(meta["segkit.input_mean"]), norm.mean)
    np.testing.assert_allclose(json.loads(meta["segkit.input_std"]), norm.std)

    # The docs' script, run as a user would but with torch unimportable: it needs only onnxruntime.
    block = re.search(r"```python\n(.*?)```", (ROOT / "docs" / "deploy.md").read_text(), re.S)
    assert block, "docs/deploy.md lost its script"
    script = tmp_path / "detect.py"
    script.write_text(block.group(1))
    photo = write_images(str(tmp_path / "photos"), count=1, image_size=(88, 104))[0]  # not the traced size
    threshold = 0.3
    argv = [str(script), str(out), photo, str(tmp_path / "drawn.png"), str(threshold)]
    runner = f"import sys; sys.modules['torch'] = None; sys.argv = {argv!r}; exec(open({str(script)!r}).read())"
    run = subprocess.run([sys.executable, "-c", runner], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    rows = [line.split() for line in run.stdout.splitlines()[:-1]]

    expected = Predictor(model, CLASS_NAMES, normalization=norm, device="cpu").predict(photo, min_confidence=threshold)
    assert 0 < len(expected) == len(rows)
    assert [r[0] for r in rows] == expected.names
    np.testing.assert_allclose([float(r[1]) for r in rows], expected.scores, atol=1e-4 + SCORE_ATOL)
    np.testing.assert_allclose([[float(v) for v in r[2:]] for r in rows], expected.boxes, atol=0.01 + BOX_ATOL_PX)
    assert Image.open(tmp_path / "drawn.png").size == (104, 88)


def test_opset_below_11_is_a_clear_error(model, tmp_path) -> None:
    with pytest.raises(ValueError, match="opset 11"):
        export_instance_onnx(model, tmp_path / "m.onnx", opset=10)


def test_a_detector_that_normalises_inside_is_fed_unit_pixels(tmp_path) -> None:
    # With torchvision's own normalisation kept, Predictor feeds pixels / 255; the metadata must say so.
    torch.manual_seed(0)
    net = build_model(**CONFIG, image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225]).eval()
    path = export_instance_onnx(net, tmp_path / "m.onnx", TRACED, normalization=Normalization.imagenet())
    meta = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_modelmeta().custom_metadata_map
    mean, std = (np.asarray(json.loads(meta[f"segkit.input_{k}"]), np.float32) for k in ("mean", "std"))
    np.testing.assert_array_equal(mean, [0, 0, 0])
    np.testing.assert_array_equal(std, [255, 255, 255])

    pixels = np.asarray(Image.open(write_images(str(tmp_path), count=1, image_size=(80, 96))[0]).convert("RGB"))
    got = _onnx(path, np.ascontiguousarray(((pixels.astype(np.float32) - mean) / std).transpose(2, 0, 1)))
    expected = Predictor(net, device="cpu", normalization=Normalization.imagenet()).predict(pixels, min_confidence=0)
    assert len(expected) >= 10
    np.testing.assert_array_equal(got["labels"], expected.labels)
    np.testing.assert_allclose(got["boxes"], expected.boxes, atol=BOX_ATOL_PX, rtol=0)
    np.testing.assert_allclose(got["scores"], expected.scores, atol=SCORE_ATOL, rtol=0)
