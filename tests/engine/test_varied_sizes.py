"""Photos of different sizes: batches are padded, training runs, validation is exact whatever the batch size."""

import numpy as np
import pytest
import torch

from segkit import Trainer, build_model
from segkit.datasets import build_dataset
from segkit.metrics import ConfusionMatrix
from tests.engine._varied import SIZES, write_varied_folder


@pytest.fixture(scope="module")
def varied(tmp_path_factory):
    root = tmp_path_factory.mktemp("varied")
    masks = write_varied_folder(root, num_classes=3, ignore_value=255)
    return build_dataset("folder", root=root, num_classes=3), masks


@pytest.fixture(scope="module")
def trained(tmp_path_factory, varied):
    """A U-Net with BatchNorm trained one epoch at batch 4 on the varied folder (so it predicts several classes)."""
    ds, _ = varied
    torch.manual_seed(0)
    model = build_model("unet", encoder="resnet18", encoder_weights=None, num_classes=3)
    trainer = Trainer(model, "ce", ds, ds, epochs=1, batch_size=4, lr=0.01, out_dir=tmp_path_factory.mktemp("run"))
    metrics = trainer.fit()
    return trainer, metrics


def _reference_confusion(model, ds, masks):
    """Each image alone through the model in eval mode, scored against the mask file's values."""
    cm = ConfusionMatrix(3, 255)
    model.eval()
    with torch.no_grad():
        for i, mask in enumerate(masks):
            pred = model(ds[i]["image"].contiguous()[None]).argmax(1)
            cm.update(pred, torch.from_numpy(mask.astype(np.int64))[None])
    return cm.mat


def test_training_at_batch_4_on_different_sizes_runs(trained):
    _, metrics = trained
    assert np.isfinite(metrics["train/loss"])
    assert 0.0 <= metrics["val/miou"] <= 1.0


@pytest.mark.parametrize("batch_size", [2, 4, 5])
def test_validation_at_any_batch_size_equals_each_image_alone(tmp_path, varied, trained, batch_size):
    ds, masks = varied
    trainer, _ = trained
    reference = _reference_confusion(trainer.eval_model, ds, masks)
    assert int((reference.sum(0) > 0).sum()) >= 2  # the model predicts several classes: a non-trivial check
    one = Trainer(trainer.eval_model, "ce", None, ds, batch_size=1, out_dir=tmp_path / "b1")
    many = Trainer(trainer.eval_model, "ce", None, ds, batch_size=batch_size, out_dir=tmp_path / "bn")
    miou_one, miou_many = one.validate()["miou"], many.validate()["miou"]
    assert torch.equal(one.last_confusion.mat.cpu(), reference)
    assert torch.equal(many.last_confusion.mat.cpu(), reference)  # padding neither counted nor seen
    assert miou_many == miou_one
    # Every labelled pixel of the files (not the padding, not the ignored border) is counted once.
    assert int(reference.sum()) == sum(int((m != 255).sum()) for m in masks)


def test_padding_is_announced_once(tmp_path, varied, capsys):
    ds, _ = varied
    from tests.engine._nets import TinyNet

    trainer = Trainer(TinyNet(num_classes=3), "ce", ds, ds, epochs=2, batch_size=4, out_dir=tmp_path)
    trainer.fit()
    out = capsys.readouterr().out
    assert out.count("images of different sizes in a batch: padded to") == 1
    assert "mask ignore_index 255" in out and "image_size=" in out


def test_padded_training_loss_equals_the_loss_on_the_real_pixels(tmp_path, varied):
    """The loss of a padded batch is the cross-entropy over the files' labelled pixels (padding is ignored)."""
    ds, masks = varied
    from tests.engine._nets import TinyNet

    torch.manual_seed(0)
    net = TinyNet(num_classes=3)
    trainer = Trainer(net, "ce", ds, None, batch_size=4, out_dir=tmp_path)
    loader = trainer._loader(ds, torch.utils.data.SequentialSampler(range(4)))
    batch = next(iter(loader))
    assert batch["padded"] and batch["image"].shape[-2:] == (max(h for h, _ in SIZES[:4]), max(w for _, w in SIZES[:4]))
    loss = trainer.training_step(batch)["loss"].detach()
    # Independent: logits of each image computed on the padded batch, CE summed over its own labelled pixels.
    logits = net(batch["image"]).detach()
    total, count = 0.0, 0
    for i, mask in enumerate(masks[:4]):
        h, w = mask.shape
        target = torch.from_numpy(mask.astype(np.int64))
        keep = target != 255
        ce = torch.nn.functional.cross_entropy(
            logits[i : i + 1, :, :h, :w], target[None], reduction="none", ignore_index=255
        )[0]
        total, count = total + float(ce[keep].sum()), count + int(keep.sum())
    assert float(loss) == pytest.approx(total / count, rel=1e-5)
