"""Real-time two-branch models (DDRNet, PIDNet): sizes, outputs, the papers' parameter and FLOP counts, tracing,
and the Trainer training them with their own losses."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from segkit.engine import Trainer
from segkit.engine.callbacks import Callback
from segkit.losses.realtime import DDRNetLoss, PIDNetLoss
from segkit.models import build_model
from segkit.models.pidnet import PIDNet

# Paper tables (Cityscapes heads, 19 classes, inference model without the auxiliary heads): parameters in
# millions and GFLOPs at 2048x1024. Hong et al. 2021 Table 4; Xu et al. 2023 Table 6. Both papers count
# multiply-accumulates as "FLOPs" (FlopCounterMode counts 2 per MAC: halved below).
PAPER = {
    "ddrnet_23_slim": (5.7, 36.3),
    "ddrnet_23": (20.1, 143.1),
    "pidnet_s": (7.6, 47.6),
    "pidnet_l": (36.9, 275.8),
}
# Training-mode outputs of the registered names: (main, aux) and (main, p_aux, boundary).
HEADS = {"ddrnet_23_slim": 2, "pidnet_s": 3}


def _on_meta(name: str) -> torch.nn.Module:
    with torch.device("meta"):  # no memory, no initialisation cost: only shapes are needed
        if name == "pidnet_l":  # not registered: the class with the official code's PIDNet-L arguments
            return PIDNet(19, planes=64, ppm_planes=112, head_planes=256, m=3, n=4, aux=False).eval()
        return build_model(name, num_classes=19, aux=False).eval()


@pytest.mark.parametrize("name", sorted(PAPER))
def test_parameter_count_matches_paper(name: str) -> None:
    count = sum(p.numel() for p in _on_meta(name).parameters())
    # The paper rounds to 0.1M: the count must round to the published figure.
    assert round(count / 1e6, 1) == PAPER[name][0], count


@pytest.mark.parametrize("name", sorted(PAPER))
def test_multiply_accumulates_match_paper(name: str) -> None:
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        _on_meta(name)(torch.empty(1, 3, 1024, 2048, device="meta"))
    gmacs = counter.get_total_flops() / 2e9
    # Convolutions only; within 1% of the table (DDRNet agrees to its rounding, PIDNet-S is 0.9% under: the
    # paper's counter also charges some of the elementwise fusion work).
    assert gmacs == pytest.approx(PAPER[name][1], rel=0.01)


@pytest.mark.parametrize("name", sorted(HEADS))
def test_odd_size_logits_and_training_outputs(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name, num_classes=5)
    x = torch.randn(2, 3, 97, 131)
    outputs = model(x)
    assert isinstance(outputs, tuple) and len(outputs) == HEADS[name]
    assert outputs[0].shape == outputs[1].shape == (2, 5, 97, 131)  # main logits first, then the semantic aux
    if name == "pidnet_s":
        assert outputs[2].shape == (2, 1, 97, 131)  # boundary logits
    model.eval()
    with torch.no_grad():
        logits = model(x)
    assert isinstance(logits, torch.Tensor) and logits.shape == (2, 5, 97, 131)
    # Eval mode returns the main head only: the train-mode main logits recomputed with the same statistics.
    model.train()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x)[0], logits)


@pytest.mark.parametrize("name", sorted(HEADS))
def test_without_aux_heads_training_returns_logits(name: str) -> None:
    model = build_model(name, num_classes=3, aux=False)
    assert not any(".aux_head" in n or "p_head" in n or "d_head" in n for n, _ in model.named_parameters())
    out = model(torch.randn(2, 3, 40, 56))
    assert isinstance(out, torch.Tensor) and out.shape == (2, 3, 40, 56)


def test_small_input_keeps_branches_aligned() -> None:
    # 33x47: every stage rounds up (ceil) and the stride-64 map is 1x1; sizes come from the tensors.
    model = build_model("pidnet_s", num_classes=2).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 33, 47)).shape == (1, 2, 33, 47)


@pytest.mark.parametrize("name", sorted(HEADS))
def test_traced_graph_keeps_sizes_symbolic(name: str) -> None:
    # A trace at 64x64 (the stride-64 map is 1x1 there) must still resize correctly at other sizes: no
    # size is baked into the graph, so an ONNX export (the same tracer) at one size serves every size.
    # onnxruntime against PyTorch is checked for every registered model in test_export.py.
    torch.manual_seed(0)
    model = build_model(name, num_classes=3).eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.trace's deprecation: ONNX export still uses it
        traced = torch.jit.trace(model, torch.randn(1, 3, 64, 64), check_trace=False)
        with torch.jit.optimized_execution(False):  # the graph as traced; no profiling passes (seconds)
            for size in [(97, 131), (200, 72)]:
                x = torch.randn(1, 3, *size)
                torch.testing.assert_close(traced(x), model(x))


@pytest.mark.parametrize("name", sorted(HEADS))
def test_input_scale_runs_the_network_on_the_half_size_image(name: str) -> None:
    # What the stem sees must be the 2x2 block means of the image (a half-size bilinear resize, computed here by
    # hand). Training outputs come at that half size (the loss runs there), eval logits at the image's size.
    torch.manual_seed(0)
    model = build_model(name, num_classes=4, input_scale=0.5)
    seen: list[torch.Tensor] = []
    model.stem.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach().clone()))
    x = torch.randn(2, 3, 96, 130)
    outputs = model(x)
    assert len(outputs) == HEADS[name] and all(o.shape[-2:] == (48, 65) for o in outputs)
    torch.testing.assert_close(seen[0], x.reshape(2, 3, 48, 2, 65, 2).mean(dim=(3, 5)))
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 3, 97, 131)).shape == (1, 4, 97, 131)
    assert seen[1].shape[-2:] == (48, 65)
    assert model.model_config["input_scale"] == 0.5  # checkpoints rebuild it


def test_trainer_computes_the_loss_on_the_mask_sampled_at_the_network_size(tiny_shapes, tmp_path) -> None:
    # The Trainer must hand the loss the mask sampled at the centre of each 2x2 block (rows and columns 1, 3,
    # 5, ...: an index rule written here, not the code's resize), and validate at the full size.
    seen: list[tuple[torch.Size, torch.Tensor]] = []

    class Loss(torch.nn.Module):
        def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            seen.append((logits.shape, target.clone()))
            return torch.nn.functional.cross_entropy(logits, target, ignore_index=255)

    masks: list[torch.Tensor] = []
    trainer = Trainer(build_model("ddrnet_23_slim", num_classes=4, aux=False, input_scale=0.5),
                      train_data=tiny_shapes("train", 2, 32), val_data=tiny_shapes("val", 2, 32), loss=Loss(), epochs=1,
                      batch_size=2, device="cpu", out_dir=tmp_path, scheduler=None)  # fmt: skip
    compute_loss = trainer.compute_loss

    def spy(outputs, batch):
        masks.append(batch["mask"].clone())
        return compute_loss(outputs, batch)

    trainer.compute_loss = spy
    metrics = trainer.fit()
    (shape, target), mask = seen[0], masks[0]
    assert mask.shape[-2:] == (32, 32) and shape[-2:] == (16, 16)
    torch.testing.assert_close(target, mask[:, 1::2, 1::2])
    assert 0.0 <= metrics["val/miou"] <= 1.0


@pytest.mark.parametrize("scale", [0.0, 1.5, -0.5])
def test_input_scale_outside_0_1_is_refused(scale: float) -> None:
    with pytest.raises(ValueError, match="input_scale"):
        build_model("ddrnet_23_slim", num_classes=2, input_scale=scale)


class _Terms(Callback):
    def __init__(self) -> None:
        self.steps: list[dict[str, float]] = []

    def on_train_batch_end(self, trainer, outputs) -> None:
        self.steps.append({k: float(v.detach()) for k, v in outputs.items()})


@pytest.mark.parametrize(
    ("name", "loss_cls", "terms"),
    [
        ("ddrnet_23_slim", DDRNetLoss, {"main", "aux"}),
        ("pidnet_s", PIDNetLoss, {"main", "p_aux", "boundary", "bas"}),
    ],
)
def test_trainer_trains_with_default_loss_and_logs_each_term(name, loss_cls, terms, tiny_shapes, tmp_path) -> None:
    torch.manual_seed(0)
    recorder = _Terms()
    trainer = Trainer(name, train_data=tiny_shapes("train", 4, 32), epochs=1, batch_size=2, lr=1e-3, device="cpu",
                      out_dir=tmp_path, log_every=1, scheduler=None, callbacks=[recorder])  # fmt: skip
    assert isinstance(trainer.loss_fn, loss_cls)  # the model's default_loss, with no user code
    trainer.fit()
    assert len(recorder.steps) == 2
    for step in recorder.steps:
        assert set(step) == {"loss"} | {f"loss/{t}" for t in terms}
        assert all(math.isfinite(v) for v in step.values())
        assert step["loss"] == pytest.approx(sum(step[f"loss/{t}"] for t in terms), rel=1e-5)
        assert step["loss/main"] > 0 and step["loss/aux" if "aux" in terms else "loss/p_aux"] > 0
    if name == "pidnet_s":  # shapes have object borders: the boundary head is trained
        assert all(step["loss/boundary"] > 0 for step in recorder.steps)
