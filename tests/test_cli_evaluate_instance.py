"""``segkit evaluate`` on a Mask R-CNN checkpoint: the COCO table (rows bbox/segm, columns AP ... APl) holds
the validation APs recorded in that checkpoint."""

import math

import pytest
import yaml

from segkit.checkpoint import load_checkpoint
from segkit.cli import main

COLUMNS = {"AP": "ap", "AP50": "ap50", "AP75": "ap75", "APs": "ap_small", "APm": "ap_medium", "APl": "ap_large"}


def _printed_coco_table(out: str) -> dict[str, float]:
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split() == list(COLUMNS))
    table = {}
    for line in lines[start + 1 : start + 3]:
        kind, *values = line.split()
        table.update({f"{kind}_{key}": float(v) for key, v in zip(COLUMNS.values(), values, strict=True)})
    return table


def test_evaluate_prints_the_coco_table_recorded_in_best_pt(tmp_path, capsys):
    cfg = {
        "model": {
            "name": "mask_rcnn",
            "backbone": "resnet18_fpn",
            "fpn_channels": 32,
            "rpn_anchor_sizes": [16, 32, 64, 128],
            "min_size": 64,
            "max_size": 64,
            "rpn_pre_nms_top_n_train": 100,
            "rpn_post_nms_top_n_train": 50,
            "rpn_pre_nms_top_n_test": 100,
            "rpn_post_nms_top_n_test": 50,
            "box_batch_size_per_image": 32,
            "box_detections_per_img": 10,
            "box_score_thresh": 0.0,  # an untrained model's detections are kept: the APs are not all 0
        },
        "data": {
            "name": "shapes",
            "task": "instance",
            "image_size": 64,
            "train": {"split": "train", "num_images": 4},
            "val": {"split": "val", "num_images": 3},
        },
        "train": {"task": "instance", "epochs": 1, "batch_size": 2, "device": "cpu", "out_dir": str(tmp_path / "run")},
    }
    (tmp_path / "mrcnn.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["train", "--config", str(tmp_path / "mrcnn.yaml")]) == 0
    best = tmp_path / "run" / "best.pt"
    recorded = load_checkpoint(best)["metrics"]
    capsys.readouterr()

    assert main(["evaluate", "--checkpoint", str(best)]) == 0
    printed = _printed_coco_table(capsys.readouterr().out)
    assert len(printed) == 12
    assert any(value > 0 for value in printed.values())
    for key, value in printed.items():
        want = recorded[f"val/{key}"]
        assert (math.isnan(value) and math.isnan(want)) or value == pytest.approx(want, abs=5e-5), key
