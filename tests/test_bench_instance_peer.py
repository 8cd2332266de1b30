"""bench/instance_peer.py: the parts that are segkit's own (YOLO polygon labels, COCO ground truth); no ultralytics."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("cv2")
pytest.importorskip("pycocotools")

from segkit.datasets.shapes import SHAPE_KINDS, ShapesDataset, _rasterise  # noqa: E402

_PATH = Path(__file__).resolve().parents[1] / "bench" / "instance_peer.py"
_spec = importlib.util.spec_from_file_location("instance_peer", _PATH)
assert _spec is not None and _spec.loader is not None
peer = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(peer)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


@pytest.mark.parametrize("kind", SHAPE_KINDS)
def test_polygon_round_trip(kind: str) -> None:
    """The written polygon, rasterised as YOLO rasterises it (cv2.fillPoly), gives the mask back (ring hole too)."""
    yy, xx = np.mgrid[0:96, 0:96].astype(np.float32) + 0.5
    mask = _rasterise(kind, yy, xx, 40.0, 50.0, 18.0, 0.4)
    poly = peer.mask_to_polygon(mask)
    back = peer.polygon_to_mask(poly, 96, 96)
    assert _iou(mask, back) > 0.9
    if kind == "ring":
        assert not back[40, 50]  # the hole stays empty


def test_polygon_joins_separate_parts() -> None:
    """A visible mask split in two by an occluder is one polygon covering both parts."""
    mask = np.zeros((64, 64), bool)
    mask[5:20, 5:20] = True
    mask[40:60, 30:50] = True
    back = peer.polygon_to_mask(peer.mask_to_polygon(mask), 64, 64)
    assert _iou(mask, back) > 0.9


def test_label_lines_are_normalised() -> None:
    mask = np.zeros((48, 96), bool)
    mask[10:30, 20:60] = True
    (line,) = peer.yolo_label_lines([mask], [2])
    values = line.split()
    assert values[0] == "2"
    coords = np.array(values[1:], float).reshape(-1, 2)
    assert coords.min() >= 0 and coords.max() <= 1
    assert np.allclose(coords[:, 0].min() * 96, 20) and np.allclose(coords[:, 1].max() * 48, 29)


def test_written_shapes_ground_truth(tmp_path: Path) -> None:
    """pycocotools loads the json; image, annotation counts and areas match the generated masks; labels exist."""
    from pycocotools.coco import COCO

    data_cfg = {"name": "shapes", "image_size": 64, "num_classes": 4, "max_objects": 3, "task": "instance",
                "train": {"split": "train", "num_images": 3}, "val": {"split": "val", "num_images": 4}}  # fmt: skip
    categories = peer.write_shapes(tmp_path, data_cfg)
    assert [c["id"] for c in categories] == [1, 2, 3]
    gt = COCO(str(tmp_path / "annotations" / "instances_val.json"))
    ds = ShapesDataset(split="val", num_images=4, image_size=64, num_classes=4, max_objects=3, task="instance")
    assert len(gt.getImgIds()) == 4
    expected = [ds.generate(i) for i in range(4)]
    assert len(gt.getAnnIds()) == sum(sum(bool(m.any()) for m in masks) for _, _, masks, _ in expected)
    for image_id, (_, _, masks, labels) in enumerate(expected, start=1):
        anns = gt.loadAnns(gt.getAnnIds(imgIds=image_id))
        assert [a["area"] for a in anns] == [float(m.sum()) for m in masks if m.any()]
        assert [a["category_id"] for a in anns] == [lb for m, lb in zip(masks, labels) if m.any()]
        for a, m in zip(anns, [m for m in masks if m.any()]):
            assert np.array_equal(gt.annToMask(a).astype(bool), m)
        lines = (tmp_path / "labels" / "val" / f"val_{image_id - 1:04d}.txt").read_text().splitlines()
        assert [int(ln.split()[0]) for ln in lines] == [lb - 1 for m, lb in zip(masks, labels) if m.any()]
    assert (tmp_path / "images" / "val" / "val_0000.png").is_file()
    names = json.loads(json.dumps(__import__("yaml").safe_load((tmp_path / "data.yaml").read_text())["names"]))
    assert names == {"0": "circle", "1": "square", "2": "triangle"} or names == {
        0: "circle",
        1: "square",
        2: "triangle",
    }


def test_scores_of_ground_truth_are_perfect(tmp_path: Path) -> None:
    """The ground truth given as predictions scores AP 1 (the result format and the evaluation agree)."""
    from pycocotools.coco import COCO

    data_cfg = {"name": "shapes", "image_size": 64, "num_classes": 4, "max_objects": 3,
                "train": {"split": "train", "num_images": 2}, "val": {"split": "val", "num_images": 6}}  # fmt: skip
    peer.write_shapes(tmp_path, data_cfg)
    gt = COCO(str(tmp_path / "annotations" / "instances_val.json"))
    results = [{**{k: a[k] for k in ("image_id", "category_id", "bbox", "segmentation")}, "score": 1.0}
               for a in gt.dataset["annotations"]]  # fmt: skip
    scores = peer.coco_scores(gt, results)
    assert scores["segm_ap"] == pytest.approx(1.0) and scores["bbox_ap"] == pytest.approx(1.0)


def test_peer_models_default_and_labels() -> None:
    """YOLO26n-seg is the default peer; YOLOv8n-seg is a second row on request; rows are named as Ultralytics does."""
    assert peer.parse_args([]).peer_model == ["yolo26n-seg.yaml"]
    both = peer.parse_args(["--peer-model", "yolo26n-seg.yaml", "--peer-model", "yolov8n-seg.yaml"]).peer_model
    assert both == ["yolo26n-seg.yaml", "yolov8n-seg.yaml"]
    assert [peer.peer_label(m) for m in both] == ["YOLO26n-seg", "YOLOv8n-seg"]


# A stub of the peer script's train mode: records the arguments it was given (no ultralytics needed).
_STUB = r"""
import json, sys
from pathlib import Path
args = json.loads(sys.argv[2])
Path(args["project"]).mkdir(parents=True)
(Path(args["project"]) / "args.json").write_text(json.dumps({"mode": sys.argv[1], **args}))
"""


def test_each_peer_model_trains_in_its_own_run(tmp_path: Path, fake_peer_env: Path) -> None:
    """Every --peer-model is trained (its yaml passed to the peer), into its own folder, timed under its own name."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "yolo_run.py").write_text(_STUB)
    args = peer.parse_args(["--peer-model", "yolo26n-seg.yaml", "--peer-model", "yolov8n-seg.yaml", "--minutes", "3"])
    args.imgsz = 64
    run = peer.train_all(args, out, {}, {"yolo"}, fake_peer_env / "bin" / "python", {"batch": 4})
    assert set(run["wall"]) == set(run["cpu"]) == {"yolo_yolo26n-seg", "yolo_yolov8n-seg"}
    for name, model in (("yolo_yolo26n-seg", "yolo26n-seg.yaml"), ("yolo_yolov8n-seg", "yolov8n-seg.yaml")):
        got = json.loads((out / name / "args.json").read_text())
        assert (got["mode"], got["model"], got["hours"], got["imgsz"], got["batch"]) == ("train", model, 0.05, 64, 4)
    assert json.loads((out / "wall.json").read_text())["wall"] == run["wall"]
