"""Deprecated: the training state moved to ``segkit.engine.training_state``; this name warns once and re-exports it."""

from __future__ import annotations

import warnings

from segkit.engine.training_state import (  # noqa: F401
    callback_key,
    callback_states,
    check_mid_epoch_position,
    find_resume_checkpoint,
    gather_rng_states,
    load_callback_states,
    restore_training_state,
    rng_state_for_rank,
    training_state,
    truncate_jsonl,
)

warnings.warn(
    "segkit.engine.resume is deprecated: import from segkit.engine.training_state", DeprecationWarning, stacklevel=2
)
