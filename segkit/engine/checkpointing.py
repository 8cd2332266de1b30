"""The Trainer's checkpoint methods: the state written, atomic writes of ``last.pt`` / numbered files with the
config beside them, and the restore that ``fit(resume=...)`` runs. Part of the ``Trainer``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from segkit.checkpoint import save_checkpoint
from segkit.engine.resume import find_resume_checkpoint, restore_training_state, training_state

__all__ = ["CheckpointMethods"]


class CheckpointMethods:
    """Checkpoint writing and resume, mixed into the ``Trainer``."""

    config: dict[str, Any] | None
    out_dir: Path
    is_main_process: bool
    epoch: int
    global_step: int
    batches_done: int
    _resumed_step: int | None
    # Under DDP, set by ``gather_rng_states`` before each write: ((epoch, batches_done, global_step), the
    # partial epoch's loss (sum, count) summed over the ranks), what the checkpoint stores.
    _gathered_epoch_loss: tuple[tuple[int, int, int], torch.Tensor] | None = None

    @property
    def module(self) -> nn.Module:  # the Trainer's model without its DDP wrapper
        raise NotImplementedError

    def checkpoint_state(self, metrics: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Return the plain-data state written to checkpoints (loadable with ``weights_only=True``):
        model, optimizer, scheduler, scaler, EMA, epoch/step/batch position, RNG states, callbacks."""
        return training_state(self, metrics)  # type: ignore[arg-type]  # (mixed into the Trainer)

    def save_checkpoint(
        self, path: str | Path, metrics: Mapping[str, Any] | None = None, previous: str | Path | None = None
    ) -> Path:
        """Atomically write the checkpoint to ``path`` and the resolved config beside it.

        Args:
            path: destination file.
            metrics: stored under ``metrics``.
            previous: where an existing ``path`` is moved once the new file is complete (or None).

        Raises:
            CheckpointError: the write failed (e.g. disk full); the message names the file, and any
                previous file at ``path`` is left intact.
        """
        path = save_checkpoint(self.checkpoint_state(metrics), path, previous=previous)
        if self.config is not None and not (path.parent / "config.yaml").exists():
            from segkit.config import save_config

            save_config(self.config, path.parent / "config.yaml")
        return path

    def save_last(self, metrics: Mapping[str, Any] | None = None) -> Path:
        """Write ``last.pt``, keeping the previous one as ``last.prev.pt`` (a fallback for resume)."""
        return self.save_checkpoint(self.out_dir / "last.pt", metrics, previous=self.out_dir / "last.prev.pt")

    def load_training_state(self, resume: str | Path) -> None:
        """Restore everything ``checkpoint_state`` saved (called by ``fit(resume=...)``).

        Args:
            resume: ``"last"`` (with fallback, see ``find_resume_checkpoint``), ``"auto"`` (like
                ``"last"``, but a run folder without any checkpoint starts a new run: the same command
                line serves the first start and every elastic restart) or a checkpoint path.
        """
        if str(resume) == "auto":
            names = ("last.pt", "last.prev.pt")
            if not any((self.out_dir / n).exists() for n in names) and not any(self.out_dir.glob("epoch_*.pt")):
                self._resumed_step = 0  # rows a dead attempt logged before its first checkpoint are dropped
                if self.is_main_process:
                    print(f"resume='auto': no checkpoint in {self.out_dir}, starting a new run")
                return
            resume = "last"
        path, state = find_resume_checkpoint(resume, self.out_dir)
        restore_training_state(self, state, str(path))  # type: ignore[arg-type]
        self._resumed_step = self.global_step
        if self.is_main_process:
            print(f"resuming from {path}: epoch {self.epoch + 1}, batch {self.batches_done}, step {self.global_step}")

    def weights_finite(self) -> bool:
        """True when every parameter is finite (checked before writing ``best.pt``)."""
        return all(bool(torch.isfinite(p).all()) for p in self.module.parameters())
