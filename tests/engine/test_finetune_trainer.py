"""Fine-tuning with the Trainer: freeze then unfreeze (weights and BatchNorm statistics held, their own warm-up),
per-part learning rates logged, exact resume across the unfreeze, config keys, Mask R-CNN parts."""

from __future__ import annotations

import json

import pytest
import torch

from segkit import Trainer
from segkit.config import config_from_dict
from segkit.engine.callbacks import Callback
from segkit.models import build_model

UNET = {"name": "unet", "encoder": "resnet18", "encoder_weights": None, "decoder_channels": [8, 8, 8, 8, 8]}


class EncoderAtEpochEnd(Callback):
    def __init__(self):
        self.states = []

    def on_epoch_end(self, trainer, metrics):
        enc = trainer.module.model.encoder.state_dict()
        self.states.append({k: v.clone() for k, v in enc.items()})


def _trainer(tmp_path, tiny_shapes, epochs=2, n=8, **kw):
    torch.manual_seed(3)
    return Trainer(
        dict(UNET),
        "ce",
        tiny_shapes("train", n, 32),
        tiny_shapes("val", 4, 32),
        epochs=epochs,
        batch_size=4,
        lr=0.01,
        weight_decay=0.1,
        log_every=1,
        out_dir=tmp_path,
        device="cpu",
        **kw,
    )


def test_frozen_encoder_is_held_until_unfreeze_at_then_trains_with_its_own_warmup(tmp_path, tiny_shapes):
    probe = EncoderAtEpochEnd()
    trainer = _trainer(
        tmp_path, tiny_shapes, n=16, freeze="encoder", unfreeze_at=1, warmup_iters=2, scheduler=None, callbacks=[probe]
    )
    initial = {k: v.clone() for k, v in trainer.module.model.encoder.state_dict().items()}
    decoder_before = trainer.module.model.decoder.blocks[0].conv1[0].weight.detach().clone()
    trainer.fit()
    for key, value in initial.items():  # weights, running statistics, batch counters: all held in epoch 1
        assert torch.equal(probe.states[0][key], value), key
    assert not torch.equal(probe.states[1]["layer1.0.conv1.weight"], initial["layer1.0.conv1.weight"])
    assert not torch.equal(probe.states[1]["bn1.running_mean"], initial["bn1.running_mean"])
    assert not torch.equal(trainer.module.model.decoder.blocks[0].conv1[0].weight, decoder_before)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "train/lr/model.encoder" in r]
    ratio = [r["train/lr/model.encoder"] / r["train/lr"] for r in steps]
    # 4 steps per epoch; the row of step k holds the lr of the next step: 0 while frozen, then a ramp of
    # max(warmup_iters, 4 // 4) = 2 steps, then the base schedule.
    assert ratio == pytest.approx([0, 0, 0, 0.5, 1, 1, 1, 1])


def test_lr_mult_gives_each_part_its_rate(tmp_path, tiny_shapes):
    trainer = _trainer(tmp_path, tiny_shapes, epochs=1, lr_mult={"encoder": 0.1}, scheduler=None)
    trainer.fit()
    row = next(json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines())
    assert row["train/lr"] == pytest.approx(0.01) and row["train/lr/model.encoder"] == pytest.approx(0.001)
    decays = {g["name"]: g["weight_decay"] for g in trainer.optimizer.param_groups}
    assert decays["model.encoder"] == 0.1 and decays["model.encoder/no_decay"] == 0.0


def test_unknown_prefix_fails_at_construction_listing_the_parts(tmp_path, tiny_shapes):
    with pytest.raises(ValueError, match=r"freeze: 'backbone' names no part.*decoder, encoder, segmentation_head"):
        _trainer(tmp_path, tiny_shapes, freeze="backbone")


def test_resume_across_the_unfreeze_is_exact(tmp_path, tiny_shapes):
    whole = _trainer(tmp_path / "a", tiny_shapes, epochs=2, freeze="encoder", unfreeze_at=1)
    whole.fit()

    class StopAfterFirstEpoch(Callback):
        def on_epoch_end(self, trainer, metrics):
            trainer.should_stop = True  # as a kill after the epoch's checkpoint

    first = _trainer(tmp_path / "b", tiny_shapes, freeze="encoder", unfreeze_at=1, callbacks=[StopAfterFirstEpoch()])
    first.fit()
    resumed = _trainer(tmp_path / "b", tiny_shapes, epochs=2, freeze="encoder", unfreeze_at=1)
    resumed.fit(resume="last")
    for (k, a), b in zip(whole.module.state_dict().items(), resumed.module.state_dict().values()):
        assert torch.equal(a, b), k


def test_config_keys_reach_the_trainer(tmp_path):
    cfg = config_from_dict(
        {
            "model": UNET,
            "data": {"name": "shapes", "image_size": 32, "train": {"num_images": 4}, "val": {"num_images": 2}},
            "train": {"freeze": ["encoder"], "unfreeze_at": 2, "lr_mult": {"decoder": 0.5}, "out_dir": str(tmp_path)},
        }
    )
    trainer = Trainer.from_config(cfg)
    assert trainer.frozen == ["model.encoder"] and trainer.lr_mult == {"model.decoder": 0.5}
    assert not any(p.requires_grad for p in trainer.module.model.encoder.parameters())


def test_mask_rcnn_parts_freeze_by_the_same_prefixes():
    model = build_model(
        "mask_rcnn", num_classes=3, backbone="resnet18_fpn", min_size=64, max_size=64, weights_backbone=None
    )
    trainer = Trainer(model, task="instance", freeze="backbone.body", device="cpu")
    assert trainer.frozen == ["backbone.body"]
    assert not any(p.requires_grad for p in trainer.module.backbone.body.parameters())
    assert all(p.requires_grad for p in trainer.module.roi_heads.parameters())
