"""``Trainer(task=None)``: the task comes from the model; "semantic" with Mask R-CNN is refused up front; a warm-up
longer than the run is reported."""

import pytest

from segkit import Trainer
from segkit.datasets import build_dataset
from tests.engine._nets import TinyNet
from tests.engine.test_instance import tiny_mask_rcnn


def _instances(n):
    return build_dataset("shapes", split="train", task="instance", num_images=n, image_size=64)


def test_a_detection_model_without_task_trains_as_instance(tmp_path):
    trainer = Trainer(tiny_mask_rcnn(4), None, _instances(2), epochs=1, batch_size=2, lr=1e-3,
                      out_dir=tmp_path, device="cpu")  # fmt: skip
    assert trainer.task == "instance" and trainer.monitor == "segm_ap"
    trainer.fit()  # torchvision's forward gets its targets (it asserts them in train mode)
    assert trainer.global_step == 1


def test_a_segmentation_model_without_task_is_semantic(tmp_path):
    data = build_dataset("shapes", split="train", num_images=2, image_size=32)
    trainer = Trainer(TinyNet(), "ce", data, epochs=1, batch_size=2, out_dir=tmp_path, device="cpu")
    assert trainer.task == "semantic" and trainer.monitor == "miou"


def test_semantic_task_with_a_detection_model_is_refused_before_training(tmp_path):
    with pytest.raises(ValueError, match=r"task='semantic' but the model is a detection model \(MaskRCNN\)"):
        Trainer(tiny_mask_rcnn(4), None, _instances(2), task="semantic", out_dir=tmp_path, device="cpu")
    assert not any(tmp_path.iterdir())


def test_a_warmup_longer_than_the_run_is_reported(tmp_path, capsys):
    data = build_dataset("shapes", split="train", num_images=4, image_size=32)
    Trainer(TinyNet(), "ce", data, epochs=2, batch_size=2, lr=0.02, warmup_iters=1000, out_dir=tmp_path / "a",
            device="cpu").fit()  # fmt: skip
    assert "warning: warmup_iters=1000 >= the run's 4 optimizer steps (2 epochs x 2)" in capsys.readouterr().out
    Trainer(TinyNet(), "ce", data, epochs=2, batch_size=2, lr=0.02, warmup_iters=3, out_dir=tmp_path / "b",
            device="cpu").fit()  # fmt: skip
    assert "warmup_iters" not in capsys.readouterr().out
