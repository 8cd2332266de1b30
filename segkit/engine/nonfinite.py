"""The skip of non-finite steps, two ways: on the host (one sync per step, any optimizer) or on the device
(CUDA with a fused optimizer: no sync; the counts are read at log points). Part of the ``Trainer``."""

from __future__ import annotations

from typing import Any

import torch

from segkit import distributed as ddp

__all__ = ["NonfiniteSkipping"]


class NonfiniteSkipping:
    """The Trainer's non-finite bookkeeping (``nonfinite_steps``, ``max_nonfinite`` in a row stops training)."""

    device: torch.device
    scaler: Any
    optimizer: torch.optim.Optimizer
    max_nonfinite: int
    nonfinite_steps: int
    epoch: int
    global_step: int
    _consecutive_nonfinite: int
    _nonfinite_state: torch.Tensor
    _skip_on_device: bool

    def _can_skip_on_device(self) -> bool:
        """True when a non-finite step can be skipped without a host sync: on CUDA (on the CPU the sync is
        free), without GradScaler (it owns ``found_inf``), with a fused optimizer (``fused=True`` Adam,
        AdamW or SGD), which masks its own update on the device as it does under GradScaler."""
        forced = getattr(self, "_force_skip_on_device", False)  # lets tests run this path on the CPU
        return (
            (self.device.type == "cuda" or forced)
            and self.scaler is None
            and bool(getattr(self.optimizer, "_step_supports_amp_scaling", False))
        )

    def _flag_nonfinite(self, loss: torch.Tensor) -> torch.Tensor:
        """Record a batch's finiteness on the device (no host sync) and return 1.0 if finite, else 0.0.

        The loss is still back-propagated; the optimizer step of a window holding a non-finite batch is
        masked in ``_optimizer_step``. Counts are checked on the host at log points and epoch ends
        (``_check_nonfinite``), so ``max_nonfinite`` in a row stops training at the next log point, and a
        skipped step still advances the scheduler, EMA and ``global_step``."""
        bad = ddp.any_across_ranks(~torch.isfinite(loss.detach())).float()
        state = self._nonfinite_state  # [window has a bad batch, total, current run, worst run]
        state[0] = torch.maximum(state[0], bad)
        state[1] += bad
        state[2] = (state[2] + 1) * bad
        state[3] = torch.maximum(state[3], state[2])
        return 1 - bad

    def _check_nonfinite(self) -> None:
        """Host-side check of the on-device counts (one sync, at log points only)."""
        if not self._skip_on_device:
            return
        _, total, run, worst = (int(v) for v in self._nonfinite_state.tolist())
        self.nonfinite_steps, self._consecutive_nonfinite = total, run
        if worst >= self.max_nonfinite:
            self._consecutive_nonfinite = worst
            self._raise_nonfinite()

    def _skip_nonfinite(self) -> None:
        self.nonfinite_steps += 1
        self._consecutive_nonfinite += 1
        if self._consecutive_nonfinite >= self.max_nonfinite:
            self._raise_nonfinite()

    def _raise_nonfinite(self) -> None:
        raise FloatingPointError(
            f"training stopped: {self._consecutive_nonfinite} consecutive non-finite losses at epoch "
            f"{self.epoch + 1}, step {self.global_step} (lower the lr, enable grad_clip, or check the data)"
        )
