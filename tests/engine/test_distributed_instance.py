"""torchrun: Mask R-CNN trains under DDP (2 CPU processes, gloo) and the COCO AP of the sharded validation
(predictions gathered from both ranks) equals a single process evaluating the same weights on every image."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from segkit import Trainer
from segkit.checkpoint import load_checkpoint
from tests.engine.test_instance import tiny_mask_rcnn

ROOT = Path(__file__).resolve().parents[2]


def make_data():
    from segkit.datasets import build_dataset

    return (
        build_dataset("shapes", split="train", task="instance", image_size=64, num_images=8),
        build_dataset("shapes", split="val", task="instance", image_size=64, num_images=5),
    )  # 5: uneven shards (3 + 2 images)


class OracleTrainer(Trainer):
    """Validation predicts the ground truth, shifted and mislabelled by an amount that depends on the image,
    so AP lies strictly between 0 and 1 and changes if any image's predictions or annotations go missing."""

    def validation_step(self, batch, model=None):
        out = []
        for t in batch["target"]:
            iid, k = int(t["image_id"]), len(t["labels"])
            boxes = t["boxes"].float() + float(iid % 4) * torch.tensor([3.0, 0.0, 3.0, 0.0])
            labels = t["labels"].clone()
            if iid % 3 == 0:
                labels[0] = labels[0] % 3 + 1  # a wrong class
            masks = torch.roll(t["masks"].float(), shifts=iid % 4 * 3, dims=-1)[:, None]
            out.append({"boxes": boxes, "labels": labels, "scores": torch.linspace(0.9, 0.5, k), "masks": masks})
        return out


def test_torchrun_mask_rcnn_gathers_coco_predictions(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    cmd += [str(ROOT / "tests/engine/ddp_instance.py"), str(tmp_path / "ddp")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / "ddp" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r.pop("world") for r in ranks] == [2, 2]
    assert json.dumps(ranks[0]) == json.dumps(ranks[1])  # every rank: AP of the gathered predictions (NaN-safe)

    assert load_checkpoint(tmp_path / "ddp" / "last.pt")["task"] == "instance"

    train, val = make_data()
    single = OracleTrainer(tiny_mask_rcnn(4), None, train, val, task="instance", out_dir=tmp_path / "one", device="cpu")
    metrics = single.validate()
    assert 0.05 < metrics["bbox_ap"] < 0.95 and 0.05 < metrics["segm_ap"] < 0.95
    for key, value in ranks[0].items():
        assert value == pytest.approx(metrics[key.removeprefix("val/")], abs=1e-9, nan_ok=True), key
