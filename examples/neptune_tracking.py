"""Track a run with Neptune in offline mode, as the article does: config, metrics, a predicted image, weight histograms.

Runs offline, with no Neptune account::

    python examples/neptune_tracking.py            # a small U-Net on the built-in shapes data
    python examples/neptune_tracking.py --quick    # tiny sizes, one epoch (used by the tests)

What goes to Neptune: the resolved config under ``parameters``; every training step's loss terms and
lr and every epoch's validation metrics as series; a validation overlay and histograms of the weights
of the first four convolution layers (the article's last figure, image series ``weights/histograms``)
each epoch (the Trainer does both); after training, a held-out image with its prediction (the
callback below).

Offline mode writes the run under ``<out>/.neptune/offline/run__<id>__...`` (the working directory of
the run). Later, either

- upload it to a Neptune(-compatible) server: ``cd <out> && NEPTUNE_PROJECT=ws/proj NEPTUNE_API_TOKEN=...
  neptune sync`` (hosted neptune.ai has closed; a self-hosted server still takes it), or
- replay it into a tracker you run yourself:
  ``segkit runs export <out>/.neptune/offline/run__... --to tensorboard`` (or ``--to mlflow``).

To log online, set ``mode: async`` in the tracker block with ``NEPTUNE_PROJECT`` and
``NEPTUNE_API_TOKEN`` set; an unreachable server falls back to offline with one warning. For real
data and pretrained weights change the ``data`` and ``model`` blocks as in ``finetune_unet.py``
(``encoder_weights: imagenet``).
"""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from segkit import Predictor, Trainer
from segkit.config import config_from_dict
from segkit.datasets import build_dataset
from segkit.engine.callbacks import Callback
from segkit.tracking.export import export_run, read_run
from segkit.viz import overlay_mask

# The client's background captures (hardware, stdout, source files) add nothing here and cost time.
NEPTUNE = {
    "name": "neptune",
    "mode": "offline",
    "tags": ["segkit", "shapes", "example"],
    "capture_hardware_metrics": False,
    "capture_stdout": False,
    "capture_stderr": False,
    "capture_traceback": False,
    "git_ref": False,
    "source_files": [],
}

CONFIG: dict[str, Any] = {
    "model": {"name": "unet", "encoder": "resnet18", "encoder_weights": None, "decoder_channels": [64, 32, 16, 16, 16]},
    "loss": {"name": "ce"},
    "data": {
        "name": "shapes",
        "image_size": 64,
        "num_classes": 4,
        "train": {"split": "train", "num_images": 256},
        "val": {"split": "val", "num_images": 32},
    },
    "train": {"epochs": 3, "batch_size": 16, "lr": 0.003, "log_every": 4, "out_dir": "run"},
    "trackers": [NEPTUNE],
}

QUICK = {
    # A 0.3M-parameter encoder: checkpoints of ~4 MB, not resnet18's 136 MB.
    "model": {"encoder": "tu-mobilenetv3_small_050", "decoder_channels": [16, 16, 8, 8, 8]},
    "data": {"image_size": 32, "train": {"split": "train", "num_images": 8}, "val": {"split": "val", "num_images": 2}},
    "train": {"epochs": 1, "batch_size": 4, "log_every": 1, "device": "cpu"},
}


class LogTestPrediction(Callback):
    """After training, log a held-out image with its predicted mask (the Trainer logs the rest each epoch)."""

    def __init__(self, image: np.ndarray) -> None:
        self.image = image

    def on_fit_end(self, trainer: Trainer) -> None:
        predictor = Predictor(trainer.eval_model, trainer.class_names, trainer.palette, device=trainer.device)
        overlay = overlay_mask(self.image, predictor.predict(self.image), trainer.palette)
        for tracker in trainer.trackers[1:]:  # the first one is the always-on metrics.jsonl
            tracker.log_images({"test/prediction": overlay}, trainer.global_step)
            # Any time, e.g. every N steps: tracker.log_histograms(weight_histograms(trainer.module, n=4), step)
        trainer.module.train()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Train with the Neptune tracker offline, read the run back, export it to TensorBoard; return the paths."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes and one epoch (for tests)")
    parser.add_argument("--out", default="runs/neptune_tracking", help="output folder (the run's working directory)")
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)

    raw = {k: (dict(v) if isinstance(v, dict) else v) for k, v in CONFIG.items()}
    if args.quick:
        for block, values in QUICK.items():
            raw[block].update(values)
    test = build_dataset("shapes", split="test", num_images=1, image_size=raw["data"]["image_size"])
    image = test.generate(0)[0]

    torch.manual_seed(0)
    # Neptune's offline client writes .neptune/ into the working directory: make that the output folder.
    with contextlib.chdir(out):
        trainer = Trainer.from_config(config_from_dict(raw), callbacks=[LogTestPrediction(image)])
        trainer.fit()
    runs = sorted((out / ".neptune" / "offline").glob("run__*"))
    if not runs:
        raise RuntimeError(f"no Neptune offline run under {out / '.neptune' / 'offline'}")
    run = runs[-1]

    # Read the offline run back (what `neptune sync` would upload) and replay it into TensorBoard.
    record = read_run(run)
    # The weight histograms of the first conv layers as Neptune stored them (the last epoch's), as a PNG;
    # segkit.viz.histograms.plot_weight_histograms(model, n=4) draws the same figure without a tracker.
    histogram_png = out / "weight_histograms.png"
    Image.fromarray([a for name, _, a in record.images if name == "weights/histograms"][-1]).save(histogram_png)
    series = sorted({k for _, m in record.metrics for k in m})
    print(f"Neptune offline run: {run}")
    print(f"  parameters: {', '.join(sorted(record.params))}")
    print(f"  metric series ({len(series)}): {', '.join(series[:8])}{' ...' if len(series) > 8 else ''}")
    print(f"  images: {', '.join(sorted({name for name, _, _ in record.images}))}")
    _, where = export_run(run, "tensorboard", out=out / "tensorboard")
    print(f"exported to {where}")
    print("\nLater: upload with")
    print(f"  cd {out} && NEPTUNE_PROJECT=workspace/project NEPTUNE_API_TOKEN=... neptune sync")
    print("or replay into a tracker of your own:")
    print(f"  segkit runs export {run} --to tensorboard   # or --to mlflow")
    return {
        "neptune_run": run,
        "record": record,
        "tensorboard": out / "tensorboard",
        "histograms": histogram_png,
        "run_dir": out / "run",
    }


if __name__ == "__main__":
    main()
