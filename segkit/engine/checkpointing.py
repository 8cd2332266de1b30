"""Deprecated: the Trainer's checkpoint methods moved to ``segkit.engine.training_state``; this name warns once."""

from __future__ import annotations

import warnings

from segkit.engine.training_state import TrainingStateMethods as CheckpointMethods  # noqa: F401

warnings.warn(
    "segkit.engine.checkpointing is deprecated: import TrainingStateMethods from segkit.engine.training_state",
    DeprecationWarning,
    stacklevel=2,
)
