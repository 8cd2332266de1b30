"""A frozen encoder costs no backward: during the Trainer's own steps its parameters get no ``.grad`` and its
outputs carry no autograd node, so autograd has nothing to compute through it (bench/finetune_frozen.py
measures what that saves)."""

from __future__ import annotations

import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook

from segkit import Trainer

# A 0.3M-parameter encoder: each checkpoint ~4 MB (resnet18: 136 MB with its Adam state).
UNET = {
    "name": "unet",
    "encoder": "tu-mobilenetv3_small_050",
    "encoder_weights": None,
    "decoder_channels": [8, 8, 8, 8, 8],
}


def _record(trainer):
    """Hooks that record, at every optimizer step, which encoder / decoder parameters hold a gradient, and for
    every encoder forward whether an output is part of the autograd graph."""
    seen = {"encoder_grads": [], "decoder_grads": [], "encoder_outputs": []}
    inner = trainer.module.model

    def before_step(optimizer, args, kwargs):
        seen["encoder_grads"].append(sum(p.grad is not None for p in inner.encoder.parameters()))
        seen["decoder_grads"].append(sum(p.grad is not None for p in inner.decoder.parameters()))

    def after_forward(module, inputs, outputs):
        if torch.is_grad_enabled():  # training steps only (validation runs under no_grad)
            seen["encoder_outputs"].append([(t.requires_grad, t.grad_fn) for t in outputs])

    # The optimizer is built in fit(): the global pre-step hook sees it (removed by the caller).
    handle = register_optimizer_step_pre_hook(before_step)
    inner.encoder.register_forward_hook(after_forward)
    return seen, handle


def test_frozen_encoder_gets_no_grad_and_records_no_backward_node(tmp_path, tiny_shapes):
    trainer = Trainer(dict(UNET), "ce", tiny_shapes("train", 8, 32), None, epochs=1, batch_size=4,
                      freeze="encoder", out_dir=tmp_path, device="cpu")  # fmt: skip
    seen, handle = _record(trainer)
    try:
        trainer.fit()
    finally:
        handle.remove()
    assert len(seen["encoder_grads"]) == 2 and len(seen["encoder_outputs"]) == 2
    assert seen["encoder_grads"] == [0, 0]  # no encoder parameter got a gradient
    decoder_params = len(list(trainer.module.model.decoder.parameters()))
    assert seen["decoder_grads"] == [decoder_params] * 2  # while the decoder trains
    for outputs in seen["encoder_outputs"]:
        assert outputs and all(not needs and node is None for needs, node in outputs)


def test_unfrozen_encoder_is_in_the_graph(tmp_path, tiny_shapes):
    """The same hooks see the encoder in the graph when it trains (so the test above can fail)."""
    trainer = Trainer(dict(UNET), "ce", tiny_shapes("train", 4, 32), None, epochs=1, batch_size=4,
                      out_dir=tmp_path, device="cpu")  # fmt: skip
    seen, handle = _record(trainer)
    try:
        trainer.fit()
    finally:
        handle.remove()
    assert seen["encoder_grads"] == [len(list(trainer.module.model.encoder.parameters()))]
    assert any(node is not None for needs, node in seen["encoder_outputs"][0])
