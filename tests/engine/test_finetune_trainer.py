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
from tests.engine._kill import KillAfterStep

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


def test_resume_after_a_kill_inside_the_unfreeze_warmup_is_exact(tmp_path, tiny_shapes):
    """Killed mid-epoch in the unfreeze epoch, while the encoder's own warm-up is under way: the resumed run
    re-freezes nothing, continues the warm-up where it was and ends bitwise equal to the uninterrupted run."""
    from segkit.checkpoint import load_checkpoint

    # 16 images / 4 = 4 steps per epoch; the encoder joins at step 5 and warms up over warmup_iters = 3 steps (5-7).
    options = {"n": 16, "freeze": "encoder", "unfreeze_at": 1, "warmup_iters": 3, "checkpoint_every": 2}
    whole = _trainer(tmp_path / "a", tiny_shapes, **options)
    whole.fit()
    with pytest.raises(KeyboardInterrupt):
        _trainer(tmp_path / "b", tiny_shapes, **options, callbacks=[KillAfterStep(7)]).fit()
    state = load_checkpoint(tmp_path / "b" / "last.pt")
    assert (state["epoch"], state["global_step"], state["batches_done"]) == (1, 6, 2)  # mid-warm-up
    resumed = _trainer(tmp_path / "b", tiny_shapes, **options)
    resumed.fit(resume="last")
    for (k, a), b in zip(whole.module.state_dict().items(), resumed.module.state_dict().values()):
        assert torch.equal(a, b), k
    for a, b in zip(whole.optimizer.state_dict()["state"].values(), resumed.optimizer.state_dict()["state"].values()):
        assert all(torch.equal(a[k], b[k]) for k in a)

    def lr_rows(run):
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        return [(r["step"], r["train/lr"], r["train/lr/model.encoder"]) for r in rows if "train/lr" in r]

    assert lr_rows(tmp_path / "b") == lr_rows(tmp_path / "a")  # every step logged once, the same rates
    # The row of step k holds the lr of step k + 1 (none after the last): the encoder's ramp over steps 5-7.
    ratios = [enc / lr for _, lr, enc in lr_rows(tmp_path / "a")[:-1]]
    assert ratios == pytest.approx([0, 0, 0, 1 / 3, 2 / 3, 1, 1])


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


def test_model_weights_in_a_yaml_config_reach_build_model(tmp_path, capsys):
    """``model.weights:`` in a YAML file: a 4-class checkpoint starts a 3-class run, every tensor but the head."""
    import yaml

    from segkit.checkpoint import save_checkpoint
    from segkit.config import load_config

    torch.manual_seed(5)
    source = build_model(**{**UNET, "num_classes": 4})
    save_checkpoint({"model": source.state_dict()}, tmp_path / "four.pt")
    raw = {
        "model": {**UNET, "num_classes": 3, "weights": str(tmp_path / "four.pt")},
        "data": {"name": "shapes", "image_size": 32, "train": {"num_images": 4}, "val": {"num_images": 2}},
        "train": {"out_dir": str(tmp_path / "run"), "device": "cpu"},
    }
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(raw))
    cfg = load_config(tmp_path / "cfg.yaml")
    assert cfg.model.params["weights"] == str(tmp_path / "four.pt")
    model = Trainer.from_config(cfg).module
    theirs = source.state_dict()
    for key, value in model.state_dict().items():
        if key.startswith("model.segmentation_head."):
            assert value.shape[0] == 3 and theirs[key].shape[0] == 4, key  # the new 3-class head
        else:
            assert torch.equal(value, theirs[key]), key
    assert "new head for 3 classes (the file has 4), not loaded: model.segmentation_head.0.weight" in (
        capsys.readouterr().err
    )


def test_mask_rcnn_parts_freeze_by_the_same_prefixes():
    model = build_model(
        "mask_rcnn", num_classes=3, backbone="resnet18_fpn", min_size=64, max_size=64, weights_backbone=None
    )
    trainer = Trainer(model, task="instance", freeze="backbone.body", device="cpu")
    assert trainer.frozen == ["backbone.body"]
    assert not any(p.requires_grad for p in trainer.module.backbone.body.parameters())
    assert all(p.requires_grad for p in trainer.module.roi_heads.parameters())
