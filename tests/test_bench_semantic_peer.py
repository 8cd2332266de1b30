"""bench/semantic_peer.py on a tiny fake CamVid (SegNet layout, 48x36 frames): the YOLO layout it writes, its scoring,
and one end-to-end run in which segkit really trains, is scored and exported, while the peer (Ultralytics, not
installed here) is a stub script that answers each of its modes: it "predicts" the masks the script wrote."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

pytest.importorskip("onnxruntime")

_BENCH = Path(__file__).resolve().parents[1] / "bench"
_spec = importlib.util.spec_from_file_location("semantic_peer", _BENCH / "semantic_peer.py")
assert _spec is not None and _spec.loader is not None
peer = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(peer)

H, W = 36, 48
CLASSES = ("sky", "building", "pole", "road", "pavement", "tree", "sign_symbol", "fence", "car", "pedestrian",
           "bicyclist")  # fmt: skip


def write_fake_camvid(root: Path, n_train: int = 4, n_val: int = 3) -> dict[str, dict[str, np.ndarray]]:
    """SegNet layout: {split}/*.png, {split}annot/*.png (0..10, 11 = void), {split}.txt of another machine's paths.

    Labels are blocks (learnable, thin ones too) with some void; returns the raw annotations by split and stem.
    """
    rng = np.random.default_rng(0)
    raw: dict[str, dict[str, np.ndarray]] = {}
    for split, n in (("train", n_train), ("val", n_val)):
        (root / split).mkdir(parents=True)
        (root / f"{split}annot").mkdir()
        names = [f"0001TP_{6690 + 30 * i:06d}.png" for i in range(n)]
        raw[split] = {}
        for name in names:
            label = np.repeat(np.repeat(rng.integers(0, 12, (H // 6, W // 6)), 6, 0), 6, 1).astype(np.uint8)
            image = (label[..., None] * 20 + rng.integers(0, 30, (H, W, 3))).astype(np.uint8)
            Image.fromarray(image).save(root / split / name)
            Image.fromarray(label).save(root / f"{split}annot" / name)
            raw[split][Path(name).stem] = label
        lines = [f"/SegNet/CamVid/{split}/{n_} /SegNet/CamVid/{split}annot/{n_}" for n_ in reversed(names)]
        (root / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return raw


def numpy_iou(preds: dict[str, np.ndarray], targets: dict[str, np.ndarray]) -> np.ndarray:
    """Per-class IoU over all frames, void (11) ignored, NaN for a class in neither: the reference."""
    inter, union = np.zeros(11), np.zeros(11)
    for stem, target in targets.items():
        keep = target != 11
        p, t = preds[stem][keep], target[keep]
        for c in range(11):
            inter[c] += np.sum((p == c) & (t == c))
            union[c] += np.sum((p == c) | (t == c))
    return np.where(union > 0, inter / np.maximum(union, 1), np.nan)


def test_yolo_layout(tmp_path: Path) -> None:
    """images/ hold the same files; masks/ the annotations with void -> 255; data.yaml points Ultralytics at them."""
    raw = write_fake_camvid(tmp_path / "camvid")
    data_yaml = peer.write_yolo_semantic(tmp_path / "camvid", tmp_path / "yolo")
    for split, labels in raw.items():
        assert sorted(p.stem for p in (tmp_path / "yolo" / "masks" / split).glob("*.png")) == sorted(labels)
        for stem, label in labels.items():
            mask = np.asarray(Image.open(tmp_path / "yolo" / "masks" / split / f"{stem}.png"))
            assert mask.dtype == np.uint8 and mask.ndim == 2
            assert np.array_equal(mask, np.where(label == 11, 255, label))
            image = tmp_path / "yolo" / "images" / split / f"{stem}.png"
            assert image.read_bytes() == (tmp_path / "camvid" / split / f"{stem}.png").read_bytes()
    cfg = yaml.safe_load(data_yaml.read_text())
    assert (cfg["train"], cfg["val"], cfg["masks_dir"]) == ("images/train", "images/val", "masks")
    assert Path(cfg["path"]) == (tmp_path / "yolo").resolve()
    assert cfg["names"] == dict(enumerate(CLASSES))


def test_resize_nearest_against_repeat() -> None:
    """Upscaling by 2 is np.repeat; downscaling by 2 takes the pixel whose centre the new one falls on."""
    pred = np.arange(12).reshape(3, 4)
    up = np.repeat(np.repeat(pred, 2, 0), 2, 1)
    assert np.array_equal(peer.resize_nearest(pred, (6, 8)), up)
    assert np.array_equal(peer.resize_nearest(up, (3, 4)), pred)
    assert np.array_equal(peer.resize_nearest(up, (6, 8)), up)


@pytest.mark.parametrize("shape", [(360, 480), (20, 31), (100, 7)])
def test_resize_nearest_against_torch(shape: tuple[int, int]) -> None:
    """Any ratio: torch's ``nearest-exact`` (each new pixel takes the old one under its centre) is the reference."""
    import torch
    import torch.nn.functional as F

    pred = np.random.default_rng(0).integers(0, 11, (37, 53))
    ref = F.interpolate(torch.from_numpy(pred)[None, None].float(), size=shape, mode="nearest-exact")[0, 0]
    assert np.array_equal(peer.resize_nearest(pred, shape), ref.long().numpy())


def test_score_matches_numpy(tmp_path: Path) -> None:
    """The confusion-matrix scores of random predictions equal the numpy reference (void ignored, absent = NaN)."""
    raw = write_fake_camvid(tmp_path / "camvid", n_train=1, n_val=3)
    rng = np.random.default_rng(1)
    preds = {stem: rng.integers(0, 9, (H, W)) for stem in raw["val"]}  # classes 9, 10 never predicted
    scores = peer.score(tmp_path / "camvid", preds)
    ref = numpy_iou(preds, raw["val"])
    np.testing.assert_allclose(scores["iou"], ref, equal_nan=True)
    assert scores["miou"] == pytest.approx(np.nanmean(ref))
    with pytest.raises(KeyError, match="no prediction"):
        peer.score(tmp_path / "camvid", dict(list(preds.items())[:2]))


# The peer, stubbed: train writes what an Ultralytics run leaves (weights, results.csv of 2 epochs); predict writes,
# for each image, the mask the script wrote for it (255 -> 0) upscaled 2x, so scoring must resize it back; export
# writes a one-op ONNX graph at each size. It runs in this venv (numpy, PIL, onnx) behind a fake peer venv's bin/python.
_STUB = r"""
import json, sys
from pathlib import Path
import numpy as np
from PIL import Image
mode, args = sys.argv[1], json.loads(sys.argv[2])
out = Path(args["out"])
if mode == "train":
    assert args["model"] == "yolo26n-sem.yaml" and Path(args["data"]).is_file(), args
    (out / "train" / "weights").mkdir(parents=True)
    (out / "train" / "weights" / "best.pt").write_bytes(b"stub")
    (out / "train" / "results.csv").write_text("epoch,loss\n1,0.9\n2,0.8\n")
elif mode == "predict":
    out.mkdir(parents=True)
    for path in args["images"]:
        mask = np.asarray(Image.open(path.replace("/images/", "/masks/")))
        mask = np.where(mask == 255, 0, mask).astype(np.uint8)
        Image.fromarray(np.repeat(np.repeat(mask, 2, 0), 2, 1)).save(out / (Path(path).stem + ".png"))
    json.dump({"params": 1234}, open(out / "model.json", "w"))
else:
    from onnx import TensorProto, helper, save
    files = {}
    for h, w in args["sizes"]:
        files[f"{h}x{w}"] = str(out / f"yolo_{h}x{w}.onnx")
        x = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, h, w])
        y = helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 3, h, w])
        graph = helper.make_graph([helper.make_node("Relu", ["images"], ["output0"])], "stub", [x], [y])
        save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), files[f"{h}x{w}"])
    json.dump(files, open(out / "yolo_onnx.json", "w"))
"""


def test_end_to_end_with_a_stub_peer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_peer_env: Path) -> None:
    raw = write_fake_camvid(tmp_path / "camvid")
    config = {
        "model": {"name": "unet", "encoder": "resnet18", "encoder_weights": None, "decoder_channels": [16, 8, 8, 8, 8]},
        "data": {"name": "camvid", "root": "/placeholder", "train": {"split": "train",
                 "transforms": {"crop_size": [32, 32], "hflip": 0.5}}, "val": {"split": "val"}},
        "train": {"epochs": 2, "batch_size": 2, "lr": 0.01, "seed": 0},
    }  # fmt: skip
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(config))
    monkeypatch.setattr(peer, "_YOLO_SCRIPT", _STUB)
    results, write = tmp_path / "RESULTS.md", peer.write_results
    monkeypatch.setattr(peer, "write_results", lambda block, key, heading: write(block, key, heading, results))
    argv = ["--camvid", str(tmp_path / "camvid"), "--minutes", "0.05", "--config", str(tmp_path / "tiny.yaml"),
            "--out", str(tmp_path / "out"), "--peer-env", str(fake_peer_env), "--latency",
            "--latency-size", "36x48", "--latency-runs", "2", "--write-results"]  # fmt: skip
    rows = {r["kind"]: r for r in peer.main(argv)}

    # The peer's predictions are the written masks: perfect on every class present in val, NaN on the others.
    present = np.isin(np.arange(11), np.concatenate([m[m != 11] for m in raw["val"].values()]))
    expected = np.where(present, 1.0, np.nan)
    np.testing.assert_array_equal(rows["yolo"]["scores"]["iou"], expected)
    assert rows["yolo"]["scores"]["miou"] == 1.0
    assert (rows["yolo"]["epochs"], rows["yolo"]["params"]) == (2, 1234)

    # segkit really trained (the Trainer's metrics), and its score is numpy's IoU of its own predictions.
    from segkit.inference import Predictor

    seg = rows["segkit"]
    assert seg["epochs"] >= 1 and seg["own_img_s"] > 0
    predictor = Predictor.from_checkpoint(tmp_path / "out" / "segkit" / "best.pt", device="cpu")
    preds = {stem: predictor.predict(str(tmp_path / "camvid" / "val" / f"{stem}.png")) for stem in raw["val"]}
    np.testing.assert_allclose(seg["scores"]["iou"], numpy_iou(preds, raw["val"]), equal_nan=True)
    assert seg["params"] == sum(p.numel() for p in predictor.model.parameters())

    # Latency: segkit's export and the peer's, at the size asked, batch 1.
    for row in rows.values():
        ms, shape = row["latency"]["36x48"]
        assert ms > 0 and shape == (1, 3, 36, 48)
    # --latency-only times what that run scored (its scores.json), without training or scoring again.
    again = peer.main([*argv[:10], "--latency-only", "--latency-size", "40x64", "--latency-runs", "1"])
    assert [(r["name"], r["scores"]["miou"]) for r in again] == [
        (r["name"], r["scores"]["miou"]) for r in rows.values()
    ]
    assert all(r["latency"]["40x64"][1] == (1, 3, 40, 64) for r in again)
    text = results.read_text()
    assert "<!-- semantic_peer:start -->" in text and "<!-- semantic_peer_latency:start -->" in text
    assert "python bench/semantic_peer.py --camvid" in text and "load average" in text and "4 train / 3 val" in text
    assert f"| {rows['yolo']['name']} | " in text and "| 1.000 |" in text
