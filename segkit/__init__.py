"""segkit: train, fine-tune, evaluate and run image-segmentation models with PyTorch."""

from __future__ import annotations

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

__version__ = "0.1.0"

from segkit.logs import install_console_handler  # noqa: E402

install_console_handler()  # messages print as before; silence with logging.getLogger("segkit").setLevel(...)

from segkit.datasets import DATASETS, build_dataset  # noqa: E402
from segkit.engine import Trainer  # noqa: E402
from segkit.inference import Predictor  # noqa: E402
from segkit.losses import LOSSES, build_loss  # noqa: E402
from segkit.models import MODELS, build_model  # noqa: E402

__all__ = [
    "DATASETS",
    "LOSSES",
    "MODELS",
    "Predictor",
    "Trainer",
    "__version__",
    "build_dataset",
    "build_loss",
    "build_model",
]
