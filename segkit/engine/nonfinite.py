"""The skip of non-finite steps, two ways with one meaning: on the host (one sync per batch, any optimizer)
or on the device (CUDA, a fused optimizer, one batch per step: no sync; the counts are read at log points).
Part of the ``Trainer``.

The meaning: a non-finite batch is left out as if it were not in the data. Its accumulation window steps
with the mean gradient of its finite batches; a window without any is no step (weights, optimizer state,
scheduler, EMA and ``global_step`` do not move)."""

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
    scheduler: Any
    accumulate: int
    max_nonfinite: int
    nonfinite_steps: int
    epoch: int
    global_step: int
    state: Any  # the Trainer's TrainState
    _nonfinite_state: torch.Tensor
    _skip_on_device: bool

    def _can_skip_on_device(self) -> bool:
        """True when a non-finite step can be skipped without a host sync: on CUDA (on the CPU the sync is
        free), without GradScaler (it owns ``found_inf``), with a fused optimizer (``fused=True`` Adam,
        AdamW or SGD), which masks its own update on the device as it does under GradScaler, one batch per
        step (with ``accumulate > 1`` only the host knows which batches of a window to keep) and segkit's
        ``LambdaLR`` schedule or none (a skipped step's schedule step is taken back at the next check)."""
        forced = getattr(self, "_force_skip_on_device", False)  # lets tests run this path on the CPU
        return (
            (self.device.type == "cuda" or forced)
            and self.scaler is None
            and self.accumulate == 1
            and (self.scheduler is None or isinstance(self.scheduler, torch.optim.lr_scheduler.LambdaLR))
            and bool(getattr(self.optimizer, "_step_supports_amp_scaling", False))
        )

    def _flag_nonfinite(self, loss: torch.Tensor) -> torch.Tensor:
        """Record a batch's finiteness on the device (no host sync) and return 1.0 if finite, else 0.0.

        The loss is still back-propagated; the fused optimizer masks the step of a non-finite batch
        (``found_inf``) and the EMA update is masked on the device too. The host learns of it at the next
        check (``_check_nonfinite``: log points, checkpoints, epoch ends), which takes the skipped steps
        back from ``global_step`` and the schedule, so both paths reach the same state; between a skip and
        that check the lr and the EMA warm-up run one step ahead per skipped step (``log_every=1``: never).
        ``max_nonfinite`` in a row stops training at that check."""
        bad = ddp.any_across_ranks(~torch.isfinite(loss.detach())).float()
        state = self._nonfinite_state  # [this step is skipped, total, current run, worst run]
        state[0] = bad
        state[1] += bad
        state[2] = (state[2] + 1) * bad
        state[3] = torch.maximum(state[3], state[2])
        return 1 - bad

    def _check_nonfinite(self) -> None:
        """Host-side check of the on-device counts (one sync, at log points, checkpoints and epoch ends)."""
        if not self._skip_on_device:
            return
        _, total, run, worst = (int(v) for v in self._nonfinite_state.tolist())
        new_skips = total - self.nonfinite_steps
        self.nonfinite_steps, self.state.consecutive_nonfinite = total, run
        if new_skips:
            self._take_back_steps(new_skips)
        if worst >= self.max_nonfinite:
            self.state.consecutive_nonfinite = worst
            self._raise_nonfinite()

    def _take_back_steps(self, count: int) -> None:
        """A skipped step is not a step: ``global_step`` and the ``LambdaLR`` schedule go back ``count`` steps."""
        self.global_step -= count
        if self.scheduler is None:
            return
        scheduler = self.scheduler
        scheduler.last_epoch -= count
        lrs = [base * factor(scheduler.last_epoch) for factor, base in zip(scheduler.lr_lambdas, scheduler.base_lrs)]
        for group, lr in zip(self.optimizer.param_groups, lrs):
            group["lr"] = lr
        scheduler._last_lr = lrs

    def _skip_nonfinite(self) -> None:
        self.nonfinite_steps += 1
        self.state.consecutive_nonfinite += 1
        if self.state.consecutive_nonfinite >= self.max_nonfinite:
            self._raise_nonfinite()

    def _raise_nonfinite(self) -> None:
        raise FloatingPointError(
            f"training stopped: {self.state.consecutive_nonfinite} consecutive non-finite losses at epoch "
            f"{self.epoch + 1}, step {self.global_step} (lower the lr, enable grad_clip, or check the data)"
        )
