"""Training-batch edge cases: a last batch of one sample with BatchNorm, the dataset's ignore_index in the loss,
metadata read through Subset / random_split."""

import json

import numpy as np
import pytest
import torch
from torch import nn

from segkit import Trainer, build_model
from segkit.checkpoint import load_checkpoint
from segkit.datasets import build_dataset
from segkit.engine.batches import last_batch_drop
from segkit.engine.sampling import ResumableSampler
from segkit.losses import build_loss
from tests.datasets.conftest import save
from tests.engine._kill import KillAfterStep


def _folder(root, n=5, num_classes=3, size=(32, 40), ignore_value=None, seed=0):
    """``n`` same-size JPEG images + PNG index masks; a border of ``ignore_value`` when given."""
    rng = np.random.default_rng(seed)
    masks = []
    for i in range(n):
        h, w = size
        save(root / "images" / f"img_{i}.jpg", rng.integers(0, 256, (h, w, 3), dtype=np.uint8), quality=90)
        mask = rng.integers(0, num_classes, (h, w), dtype=np.uint8)
        if ignore_value is not None:
            mask[:2, :] = ignore_value
        save(root / "masks" / f"img_{i}.png", mask)
        masks.append(mask)
    return masks


class PoolNet(nn.Module):
    """Convolutions plus an image-pooling branch with BatchNorm on 1x1 maps (as DeepLab's ASPP): a batch of
    one sample fails in training ("Expected more than 1 value per channel")."""

    def __init__(self, num_classes=4, width=8):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU())
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(width, width, 1), nn.BatchNorm2d(width))
        self.head = nn.Conv2d(width, num_classes, 1)

    def forward(self, x):
        f = self.body(x)
        return self.head(f + self.pool(f))


def test_deeplab_with_a_last_batch_of_one_finishes_and_the_schedule_counts_it(tmp_path, capsys):
    _folder(tmp_path / "data", n=5)
    ds = build_dataset("folder", root=tmp_path / "data", num_classes=3)
    model = build_model("deeplabv3plus", encoder="resnet18", encoder_weights=None, num_classes=3)
    trainer = Trainer(model, "ce", ds, ds, epochs=2, batch_size=4, scheduler="poly", out_dir=tmp_path / "run")
    metrics = trainer.fit()
    assert np.isfinite(metrics["train/loss"])
    assert trainer.batches_per_epoch == 1 and trainer.global_step == 2  # 5 images at batch 4: the 5th dropped
    assert trainer.optimizer.param_groups[0]["lr"] == 0.0  # poly reached its end: the length was 2 steps
    assert len(list(trainer.train_sampler)) == 4
    assert capsys.readouterr().out.count("too few for BatchNorm in training: dropped") == 1


def test_last_batch_drop_rule():
    bn = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4))
    plain = nn.Conv2d(3, 4, 1)
    assert last_batch_drop(5, 4, bn) == 1
    assert last_batch_drop(9, 4, bn) == 1
    assert last_batch_drop(6, 4, bn) == 0  # a last batch of 2 trains
    assert last_batch_drop(5, 1, bn) == 0  # batch_size 1: every batch is one sample, nothing to drop
    assert last_batch_drop(1, 4, bn) == 0  # the only sample is kept
    assert last_batch_drop(5, 4, plain) == 0  # no BatchNorm: the sample is trained on


def test_every_rank_drops_alike_under_ddp():
    """9 samples on 2 ranks: the sampler pads to 5 per rank, so both ranks see 5 % 4 == 1 and drop one."""
    bn = nn.BatchNorm2d(2)
    samplers = [ResumableSampler(9, True, seed=0, rank=r, world_size=2) for r in range(2)]
    drops = [last_batch_drop(s.full_length(), 4, bn) for s in samplers]
    assert drops == [1, 1]
    for s, d in zip(samplers, drops):
        s.drop_tail = d
    assert [len(list(s)) for s in samplers] == [4, 4]
    assert [s.full_length() for s in samplers] == [4, 4]


def _pool_trainer(out_dir, data, callbacks=()):
    torch.manual_seed(1)
    return Trainer(PoolNet(), "ce", data[0], data[1], epochs=2, batch_size=4, lr=0.01, scheduler="poly",
                   log_every=1, checkpoint_every=1, seed=3, callbacks=callbacks, out_dir=out_dir)  # fmt: skip


def test_resume_mid_epoch_with_a_dropped_last_sample_is_exact(tmp_path):
    data = (
        build_dataset("shapes", split="train", num_images=9, image_size=24),  # 2 batches of 4, the 9th dropped
        build_dataset("shapes", split="val", num_images=2, image_size=24),
    )
    reference = _pool_trainer(tmp_path / "ref", data)
    reference.fit()
    assert reference.batches_per_epoch == 2 and reference.global_step == 4
    with pytest.raises(KeyboardInterrupt):
        _pool_trainer(tmp_path / "run", data, [KillAfterStep(3)]).fit()  # killed in epoch 2 after its 1st batch
    state = load_checkpoint(tmp_path / "run" / "last.pt")
    assert (state["epoch"], state["global_step"], state["batches_done"]) == (1, 3, 1)
    resumed = _pool_trainer(tmp_path / "run", data)
    resumed.fit(resume="last")
    assert resumed.global_step == 4
    for (name, a), b in zip(resumed.module.state_dict().items(), reference.module.state_dict().values()):
        assert torch.equal(a, b), name
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "train/lr" in r] == [1, 2, 3, 4]


def test_folder_with_ignore_index_254_trains_and_the_loss_skips_those_pixels(tmp_path):
    masks = _folder(tmp_path / "data", n=4, ignore_value=254)
    ds = build_dataset("folder", root=tmp_path / "data", num_classes=3, ignore_index=254)
    torch.manual_seed(0)
    net = nn.Conv2d(3, 3, 3, padding=1)
    trainer = Trainer(net, "ce", ds, ds, epochs=1, batch_size=4, out_dir=tmp_path / "run")
    assert trainer.loss_fn.ignore_index == 254
    batch = next(iter(trainer._loader(ds, torch.utils.data.SequentialSampler(range(4)))))
    loss = trainer.training_step(batch)["loss"].detach()
    # Independent: mean cross-entropy over the pixels the mask files label 0..2 (254 excluded).
    target = torch.from_numpy(np.stack(masks).astype(np.int64))
    keep = target != 254
    logits = net(batch["image"]).detach()
    manual = -torch.log_softmax(logits, 1).gather(1, target.clamp(max=2)[:, None])[:, 0][keep].mean()
    assert float(loss) == pytest.approx(float(manual), rel=1e-5)
    metrics = trainer.fit()
    assert np.isfinite(metrics["train/loss"]) and 0.0 <= metrics["val/miou"] <= 1.0


def test_a_combined_loss_by_name_gets_the_dataset_ignore_index_in_every_term(tmp_path):
    _folder(tmp_path / "data", n=2, ignore_value=254)
    ds = build_dataset("folder", root=tmp_path / "data", num_classes=3, ignore_index=254)
    trainer = Trainer(nn.Conv2d(3, 3, 1), "ce+dice", ds, None, out_dir=tmp_path / "run")
    assert {n: t.ignore_index for n, t in trainer.loss_fn.terms.items()} == {"ce": 254, "dice": 254}
    trainer = Trainer(nn.Conv2d(3, 3, 1), {"ce": 1.0, "lovasz": 0.5}, ds, None, out_dir=tmp_path / "run")
    assert {n: t.ignore_index for n, t in trainer.loss_fn.terms.items()} == {"ce": 254, "lovasz": 254}


def test_from_config_builds_the_loss_with_the_dataset_ignore_index(tmp_path):
    from segkit.config import config_from_dict

    _folder(tmp_path / "data", n=3, ignore_value=254)
    cfg = config_from_dict(
        {
            "model": {"name": "unet", "encoder": "resnet18", "encoder_weights": None},
            "loss": {"name": "ce+dice"},
            "data": {
                "name": "folder",
                "root": str(tmp_path / "data"),
                "num_classes": 3,
                "ignore_index": 254,
                "train": {},
                "val": {},
            },  # fmt: skip
            "train": {"epochs": 1, "batch_size": 2, "out_dir": str(tmp_path / "run")},
        }
    )
    trainer = Trainer.from_config(cfg)
    assert {n: t.ignore_index for n, t in trainer.loss_fn.terms.items()} == {"ce": 254, "dice": 254}
    assert np.isfinite(trainer.fit()["train/loss"])


def test_a_loss_module_with_another_ignore_index_is_refused(tmp_path):
    _folder(tmp_path / "data", n=2, ignore_value=254)
    ds = build_dataset("folder", root=tmp_path / "data", num_classes=3, ignore_index=254)
    with pytest.raises(ValueError, match=r"ignore_index=255 but the dataset's ignore_index is 254.*ignore_index=254"):
        Trainer(nn.Conv2d(3, 3, 1), build_loss("ce"), ds, None, out_dir=tmp_path)
    combined = build_loss("ce+dice", ce={"ignore_index": 254})  # dice keeps 255
    with pytest.raises(ValueError, match=r"loss: dice has ignore_index=255 .* is 254"):
        Trainer(nn.Conv2d(3, 3, 1), combined, ds, None, out_dir=tmp_path)
    ok = build_loss("ce+dice", ce={"ignore_index": 254}, dice={"ignore_index": 254})
    assert Trainer(nn.Conv2d(3, 3, 1), ok, ds, None, out_dir=tmp_path).loss_fn is not None


def test_train_and_val_data_with_different_ignore_index_are_refused(tmp_path):
    _folder(tmp_path / "data", n=2)
    a = build_dataset("folder", root=tmp_path / "data", num_classes=3, ignore_index=254)
    b = build_dataset("folder", root=tmp_path / "data", num_classes=3)
    with pytest.raises(ValueError, match=r"val_data: ignore_index=255 but train_data's is 254"):
        Trainer(nn.Conv2d(3, 3, 1), "ce", a, b, out_dir=tmp_path)


def test_random_split_of_a_folder_trains_with_the_model_given_by_name(tmp_path):
    _folder(tmp_path / "data", n=6, num_classes=3)
    ds = build_dataset("folder", root=tmp_path / "data", num_classes=3, class_names=["sky", "road", "car"])
    train, val = torch.utils.data.random_split(ds, [4, 2], generator=torch.Generator().manual_seed(0))
    spec = {"name": "unet", "encoder": "resnet18", "encoder_weights": None, "decoder_channels": [32, 16, 16, 8, 8]}
    trainer = Trainer(spec, "ce", train, val, epochs=1, batch_size=2, out_dir=tmp_path / "run")
    assert trainer.num_classes == 3 and trainer.class_names == ["sky", "road", "car"]
    with torch.no_grad():
        assert trainer.module.eval()(torch.zeros(1, 3, 32, 32)).shape[1] == 3  # num_classes came through
    metrics = trainer.fit()
    assert np.isfinite(metrics["train/loss"]) and "val/iou/car" in metrics
    assert load_checkpoint(tmp_path / "run" / "last.pt")["num_classes"] == 3
    assert torch.equal(trainer.last_confusion.mat.sum(), torch.tensor(2 * 32 * 40))  # the 2 val images


def test_train_and_val_data_with_different_num_classes_are_refused(tmp_path):
    _folder(tmp_path / "a", n=2, num_classes=3)
    _folder(tmp_path / "b", n=2, num_classes=4, seed=1)
    train = build_dataset("folder", root=tmp_path / "a", verbose=False)
    val = build_dataset("folder", root=tmp_path / "b", verbose=False)
    assert (train.num_classes, val.num_classes) == (3, 4)
    with pytest.raises(ValueError) as e:
        Trainer(nn.Conv2d(3, 3, 1), "ce", train, val, out_dir=tmp_path / "run")
    text = str(e.value)
    assert "val_data: num_classes=4 but train_data's is 3" in text and "num_classes=4" in text.split("Remedy")[1]
    # Through wrappers too: a Subset of the validation set carries its dataset's class count.
    with pytest.raises(ValueError, match="val_data: num_classes=4"):
        Trainer(nn.Conv2d(3, 3, 1), "ce", train, torch.utils.data.Subset(val, [0]), out_dir=tmp_path / "run")
