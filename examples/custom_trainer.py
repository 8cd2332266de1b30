"""Subclass the Trainer: a custom ``compute_loss`` with an auxiliary term, and a callback.

Runs offline on the built-in synthetic ``shapes`` data::

    python examples/custom_trainer.py           # about a minute on a laptop CPU
    python examples/custom_trainer.py --quick   # tiny sizes, one epoch (used by the tests)

``SmoothTrainer`` adds a total-variation penalty on the predicted class probabilities to the
cross-entropy (it favours piecewise-constant masks) and reports each term, so they appear in
``metrics.jsonl`` as ``train/loss/ce`` and ``train/loss/tv``. ``LossHistory`` is a callback that
collects the per-step terms without a host sync per step and draws them at the end.

Override only what you change: ``compute_loss`` here; ``training_step``, ``validation_step``,
``configure_optimizers`` and ``move_to_device`` are the other documented seams. When you need
control over the loop itself, see ``examples/plain_loop.py``. For real data and pretrained weights,
change the datasets and ``encoder_weights`` as in ``examples/finetune_unet.py``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

from segkit import Trainer
from segkit.datasets import build_dataset
from segkit.engine.callbacks import Callback
from segkit.viz import new_figure, save_figure


class SmoothTrainer(Trainer):
    """A Trainer whose loss is ``ce + tv_weight * total_variation(softmax(logits))``.

    Args:
        *args, **kwargs: the Trainer's arguments.
        tv_weight: weight of the smoothness term.
    """

    def __init__(self, *args: Any, tv_weight: float = 0.1, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tv_weight = tv_weight

    def compute_loss(self, outputs: Any, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Cross-entropy from the parent class plus the auxiliary total-variation term."""
        base = super().compute_loss(outputs, batch)
        probs = outputs.float().softmax(1)
        tv = (probs[..., 1:, :] - probs[..., :-1, :]).abs().mean() + (
            probs[..., :, 1:] - probs[..., :, :-1]
        ).abs().mean()
        aux = self.tv_weight * tv
        return {"loss": base["loss"] + aux, "loss/ce": base["loss"], "loss/tv": aux}


class LossHistory(Callback):
    """Keep every step's loss terms (as device tensors) and plot them when training ends.

    Args:
        path: where the PNG goes.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.steps: list[dict[str, torch.Tensor]] = []
        self.history: dict[str, list[float]] = {}

    def on_train_batch_end(self, trainer: Trainer, outputs: dict[str, Any]) -> None:
        # Detached tensors only: converting to floats here would sync the device every step.
        self.steps.append({k: v.detach() for k, v in outputs.items() if isinstance(v, torch.Tensor)})

    def on_fit_end(self, trainer: Trainer) -> None:
        for key in self.steps[0] if self.steps else []:
            self.history[key] = torch.stack([s[key] for s in self.steps]).float().cpu().tolist()
        fig = new_figure((6, 3.5))
        ax = fig.add_subplot(1, 1, 1)
        for key, values in self.history.items():
            ax.plot(values, label=key)
        ax.set_xlabel("step")
        ax.legend()
        save_figure(fig, self.path)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Train ``SmoothTrainer`` with ``LossHistory``; return the metrics, the history and the plot path."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes and one epoch (for tests)")
    parser.add_argument("--out", default="runs/custom_trainer", help="output folder")
    args = parser.parse_args(argv)
    size, n_train, n_val = (32, 8, 4) if args.quick else (64, 256, 64)
    history = LossHistory(Path(args.out) / "loss_terms.png")
    trainer = SmoothTrainer(
        {
            "name": "unet",
            # --quick (the tests): a 0.3M-parameter encoder, so checkpoints are ~4 MB, not resnet18's 136 MB.
            "encoder": "tu-mobilenetv3_small_050" if args.quick else "resnet18",
            "decoder_channels": [16, 16, 8, 8, 8] if args.quick else [64, 32, 16, 16, 16],
        },
        train_data=build_dataset("shapes", split="train", num_images=n_train, image_size=size),
        val_data=build_dataset("shapes", split="val", num_images=n_val, image_size=size),
        epochs=1 if args.quick else 5,
        batch_size=4 if args.quick else 16,
        lr=3e-3,
        tv_weight=0.1,
        callbacks=[history],
        device="cpu" if args.quick else "auto",
        out_dir=Path(args.out) / "run",
        log_every=1,
    )
    metrics = trainer.fit()
    print(f"val mIoU {metrics['val/miou']:.4f}; loss terms per step: {', '.join(history.history)}; plot {history.path}")
    return {"metrics": metrics, "history": history.history, "plot": history.path}


if __name__ == "__main__":
    main()
