"""smp ``aux_params`` heads get the class-presence loss: gradients reach the head, values match torch's BCE."""

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from segkit import Trainer, build_model
from segkit.datasets import collate_semantic
from tests.engine._nets import TinyNet

K = 4  # the shapes dataset's classes (background + 3 kinds)


def _unet(classes=K, **aux):
    torch.manual_seed(0)
    return build_model(
        "unet",
        encoder="resnet18",
        num_classes=K,
        decoder_channels=[16, 16, 8, 8, 8],
        aux_params={"classes": classes, **aux},
    )


def _hand_batch():
    """Two 32x32 masks: image 0 holds classes {0, 2} and ignored pixels, image 1 classes {1, 3}."""
    mask = torch.zeros(2, 32, 32, dtype=torch.int64)
    mask[0, 4:12, 4:20] = 2
    mask[0, 20:, :] = 255  # ignore: must not count as a class
    mask[1] = 1
    mask[1, 10:30, 2:9] = 3
    present = torch.tensor([[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 1.0]])
    return {"image": torch.randn(2, 3, 32, 32), "mask": mask}, present


def test_one_training_step_gives_every_aux_head_parameter_a_gradient(tmp_path, tiny_shapes):
    train = tiny_shapes("train", 4, 32)
    model = _unet()
    trainer = Trainer(model, "ce", train, epochs=1, batch_size=2, out_dir=tmp_path, device="cpu")
    batch = trainer.move_to_device(collate_semantic([train[0], train[1]]))
    out = trainer.training_step(batch)
    out["loss"].backward()
    head = model.model.classification_head
    params = list(head.named_parameters())
    assert params
    for name, p in params:
        assert p.grad is not None, f"classification_head.{name} got no gradient"
        assert p.grad.abs().sum() > 0, f"classification_head.{name} got a zero gradient"


@pytest.mark.parametrize("loss, weight", [("ce", 0.4), ("ce+dice", 0.7)])
def test_logged_aux_term_is_bce_on_class_presence_and_total_adds_it_weighted(tmp_path, tiny_shapes, loss, weight):
    model = _unet()
    kwargs = {} if weight == 0.4 else {"aux_weight": weight}  # 0.4: the documented default
    trainer = Trainer(model, loss, tiny_shapes("train", 2, 32), out_dir=tmp_path, device="cpu", **kwargs)
    batch, present = _hand_batch()
    mask_logits, class_logits = model(batch["image"])
    out = trainer.compute_loss((mask_logits, class_logits), batch)
    expected_aux = F.binary_cross_entropy_with_logits(class_logits, present)
    torch.testing.assert_close(out["loss/aux_presence"], expected_aux)
    expected_ce = F.cross_entropy(mask_logits, batch["mask"], ignore_index=255)
    if loss == "ce":
        assert set(out) == {"loss", "loss/seg", "loss/aux_presence"}
        torch.testing.assert_close(out["loss/seg"], expected_ce)
        seg = out["loss/seg"]
    else:
        assert set(out) == {"loss", "loss/ce", "loss/dice", "loss/aux_presence"}
        torch.testing.assert_close(out["loss/ce"], expected_ce)
        seg = out["loss/ce"] + out["loss/dice"]
    torch.testing.assert_close(out["loss"], seg + weight * expected_aux)


def test_fit_logs_the_aux_term(tmp_path, tiny_shapes):
    trainer = Trainer(
        _unet(), "ce", tiny_shapes("train", 4, 32), epochs=1, batch_size=2, log_every=1, out_dir=tmp_path, device="cpu"
    )
    trainer.fit()
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    step = next(r for r in rows if "train/lr" in r)
    assert step["train/loss"] == pytest.approx(step["train/loss/seg"] + 0.4 * step["train/loss/aux_presence"])


def test_aux_classes_other_than_num_classes_is_an_error(tmp_path, tiny_shapes):
    with pytest.raises(ValueError, match=r"aux_params: classes=3 but the data has num_classes=4"):
        Trainer(_unet(classes=3), "ce", tiny_shapes("train", 2, 32), out_dir=tmp_path, device="cpu")


def test_aux_head_with_an_activation_is_an_error(tmp_path, tiny_shapes):
    with pytest.raises(ValueError, match="activation=Sigmoid"):
        Trainer(_unet(activation="sigmoid"), "ce", tiny_shapes("train", 2, 32), out_dir=tmp_path, device="cpu")


def test_a_tuple_from_a_model_without_smp_aux_head_keeps_the_first_element_only(tmp_path, tiny_shapes):
    class TwoOutputs(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = TinyNet(K)

        def forward(self, x):
            logits = self.net(x)
            return logits, logits.mean((2, 3))  # (N, K), but not an smp classification head

    trainer = Trainer(TwoOutputs(), "ce", tiny_shapes("train", 2, 32), out_dir=tmp_path, device="cpu")
    batch, _ = _hand_batch()
    outputs = trainer.model(batch["image"])
    out = trainer.compute_loss(outputs, batch)
    assert set(out) == {"loss"}
    torch.testing.assert_close(out["loss"], F.cross_entropy(outputs[0], batch["mask"], ignore_index=255))
