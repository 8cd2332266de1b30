"""The Trainer: one readable loop for semantic segmentation, with a few methods to override."""

from __future__ import annotations

import math
import random
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from segkit.datasets import build_dataset, collate_semantic
from segkit.engine.callbacks import Callback, EarlyStopping, ModelCheckpoint
from segkit.engine.checkpoint import save_checkpoint
from segkit.engine.optim import build_optimizer, build_scheduler
from segkit.losses import build_loss
from segkit.metrics import ConfusionMatrix
from segkit.models import build_model
from segkit.tracking import build_tracker

__all__ = ["Trainer"]


class Trainer:
    """Train and validate a segmentation model.

    The loop, in pseudocode (hooks in brackets are callback hooks)::

        [on_fit_start]
        for epoch in range(epochs):
            [on_epoch_start]
            for batch in train_loader:
                batch = move_to_device(batch)
                out = training_step(batch)          # forward + compute_loss; out["loss"]
                backward(out["loss"] / accumulate); every `accumulate` batches: clip, step, zero_grad, lr step
                [on_train_batch_end(out)]
            val = validate()                          # validation_step per batch, confusion matrix
            [on_validation_end(val)]
            [on_epoch_end({"train/...", "val/..."})] # then trackers.log_metrics
        [on_fit_end]

    Override ``configure_optimizers``, ``training_step``, ``validation_step``, ``compute_loss`` or
    ``move_to_device`` to change one part. If you need control over the loop itself (several
    optimizers, a GAN, custom sampling per step), write your own loop: ``examples/plain_loop.py``
    shows one with the same parts.

    Args:
        model: an ``nn.Module``, a registered name (built with the dataset's ``num_classes``), or a
            mapping ``{"name": ..., **kwargs}``.
        loss: a module, a name (``"ce"``, ``"ce+dice"``), a ``{name: weight}`` mapping, or None for ``ce``.
        train_data: a ``Dataset`` or a registered dataset name (split "train").
        val_data: a ``Dataset``, a name (split "val") or None.
        task: "semantic" (instance support arrives with the instance task).
        epochs: number of passes over ``train_data``.
        batch_size: samples per forward pass (per process).
        lr: base learning rate.
        weight_decay: optimizer weight decay.
        optimizer: "adamw", "adam", "sgd", or an optimizer object.
        scheduler: "poly", "cosine", "step" or None; stepped every optimizer step.
        warmup_iters: linear warm-up steps.
        amp: None, "bf16" (autocast) or "fp16" (autocast + GradScaler, CUDA only).
        accumulate: batches per optimizer step.
        grad_clip: max gradient norm, or None.
        ema: reserved for weight EMA (decay); None disables it.
        channels_last: use the channels-last memory format for model and images.
        callbacks: extra ``Callback`` objects (checkpointing is always added).
        trackers: names, mappings or tracker objects; ``jsonl`` is always on.
        out_dir: run folder (checkpoints, ``metrics.jsonl``, ``config.yaml``).
        seed: seeds Python, NumPy and torch.
        device: "auto" (CUDA if available), "cpu", "cuda", "cuda:1", ...
        workers: DataLoader worker processes.
        monitor: validation metric for ``best.pt`` ("miou").
        max_nonfinite: stop after this many consecutive non-finite losses.
        log_every: steps between progress/metric logs (the only host syncs of the loop).
        keep_last: numbered epoch checkpoints to keep besides last/best (0 or 1 = none).
        early_stop_patience: epochs without improvement of ``monitor`` before stopping, or None.
        config: the resolved config dict, saved beside checkpoints.
    """

    def __init__(
        self,
        model: nn.Module | str | Mapping[str, Any],
        loss: nn.Module | str | Mapping[str, Any] | None = None,
        train_data: Dataset | str | None = None,
        val_data: Dataset | str | None = None,
        *,
        task: str = "semantic",
        epochs: int = 10,
        batch_size: int = 8,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        optimizer: str | torch.optim.Optimizer = "adamw",
        scheduler: str | None = "poly",
        warmup_iters: int = 0,
        amp: str | None = None,
        accumulate: int = 1,
        grad_clip: float | None = None,
        ema: float | None = None,
        channels_last: bool = False,
        callbacks: Sequence[Callback] = (),
        trackers: Sequence[Any] = (),
        out_dir: str | Path = "runs/exp",
        seed: int = 0,
        device: str | torch.device = "auto",
        workers: int = 0,
        monitor: str = "miou",
        max_nonfinite: int = 5,
        log_every: int = 10,
        keep_last: int = 1,
        early_stop_patience: int | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        if task != "semantic":
            raise ValueError(f"task: only 'semantic' is supported by this Trainer, got {task!r}")
        if amp not in (None, "bf16", "fp16"):
            raise ValueError(f"amp: expected None, 'bf16' or 'fp16', got {amp!r}")
        if accumulate < 1:
            raise ValueError(f"accumulate: expected >= 1, got {accumulate}")
        self.task = task
        self.epochs = int(epochs)
        self.batch_size = int(batch_size)
        self.lr = float(lr)
        self.weight_decay = float(weight_decay)
        self.optimizer_name = optimizer
        self.scheduler_name = scheduler
        self.warmup_iters = int(warmup_iters)
        self.amp = amp
        self.accumulate = int(accumulate)
        self.grad_clip = grad_clip
        self.ema = ema
        self.channels_last = channels_last
        self.out_dir = Path(out_dir)
        self.seed = int(seed)
        self.workers = int(workers)
        self.monitor = monitor
        self.max_nonfinite = int(max_nonfinite)
        self.log_every = max(1, int(log_every))
        self.config = dict(config) if config is not None else None
        self.device = _resolve_device(device)
        self.is_main_process = True
        seed_everything(self.seed)

        self.train_data = _as_dataset(train_data, "train")
        self.val_data = _as_dataset(val_data, "val")
        meta = self.train_data if self.train_data is not None else self.val_data
        self.num_classes: int | None = getattr(meta, "num_classes", None)
        self.ignore_index: int = getattr(meta, "ignore_index", 255)
        self.class_names: list[str] | None = list(getattr(meta, "class_names", []) or []) or None

        self.model_spec = model if isinstance(model, (str, Mapping)) else None
        self.model = self._build_model(model).to(self.device)
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        # A model may name the loss it is trained with (Gated-SCNN's dual-task loss); else cross-entropy.
        self.loss_fn = build_loss(loss if loss is not None else getattr(self.model, "default_loss", "ce"))
        if isinstance(self.loss_fn, nn.Module):
            self.loss_fn = self.loss_fn.to(self.device)

        self.callbacks: list[Callback] = [ModelCheckpoint(f"val/{monitor}", keep_last=keep_last if keep_last > 1 else 0)]
        if early_stop_patience is not None:
            self.callbacks.append(EarlyStopping(f"val/{monitor}", patience=early_stop_patience))
        self.callbacks.extend(callbacks)
        self.tracker_specs = list(trackers)
        self.trackers: list[Any] = []

        self.epoch = 0
        self.global_step = 0
        self.should_stop = False
        self.nonfinite_steps = 0
        self._consecutive_nonfinite = 0
        self.optimizer: torch.optim.Optimizer
        self.scheduler: Any = None
        self.scaler: torch.amp.GradScaler | None = None

    # ----------------------------------------------------------------- construction
    @classmethod
    def from_config(cls, cfg: Any, **overrides: Any) -> Trainer:
        """Build a Trainer from a ``segkit.config.Config`` (as the CLI does).

        Args:
            cfg: the config.
            **overrides: Trainer keyword arguments that win over ``cfg.train``.
        """
        import dataclasses

        from segkit.config import config_to_dict

        train_ds = build_dataset(cfg.data.name, **cfg.data.split_params("train"))
        val_params = cfg.data.split_params("val")
        val_ds = build_dataset(cfg.data.name, **val_params) if val_params is not None else None
        model_kwargs = dict(cfg.model.params)
        model_kwargs.setdefault("num_classes", getattr(train_ds, "num_classes", None))
        model = build_model(cfg.model.name, **model_kwargs)
        loss = None if cfg.loss is None else build_loss(cfg.loss.name, **cfg.loss.params)
        kwargs = {**dataclasses.asdict(cfg.train), **overrides}
        resolved = config_to_dict(cfg)
        resolved["model"]["num_classes"] = model_kwargs["num_classes"]
        return cls(model, loss, train_ds, val_ds, trackers=cfg.trackers, config=resolved, **kwargs)

    def _build_model(self, model: nn.Module | str | Mapping[str, Any]) -> nn.Module:
        if isinstance(model, nn.Module):
            return model
        if isinstance(model, str):
            return build_model(model, num_classes=self.num_classes)
        kwargs = dict(model)
        name = kwargs.pop("name")
        kwargs.setdefault("num_classes", self.num_classes)
        return build_model(name, **kwargs)

    # ----------------------------------------------------------------- overridable steps
    def configure_optimizers(self) -> tuple[torch.optim.Optimizer, Any]:
        """Return ``(optimizer, scheduler)``; the scheduler (or None) is stepped every optimizer step."""
        params = [p for p in self.model.parameters() if p.requires_grad]
        optimizer = build_optimizer(self.optimizer_name, params, self.lr, self.weight_decay)
        total = self.epochs * math.ceil(len(self.train_loader) / self.accumulate)
        scheduler = build_scheduler(self.scheduler_name, optimizer, total, self.warmup_iters)
        return optimizer, scheduler

    def move_to_device(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Move the tensors of a collated batch to ``self.device`` (images channels-last if asked)."""
        out = dict(batch)
        non_blocking = self.device.type == "cuda"
        for key, value in out.items():
            if isinstance(value, torch.Tensor):
                out[key] = value.to(self.device, non_blocking=non_blocking)
        if self.channels_last and isinstance(out.get("image"), torch.Tensor):
            out["image"] = out["image"].contiguous(memory_format=torch.channels_last)
        return out

    def compute_loss(self, outputs: Any, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Return ``{"loss": total, **terms}`` for model ``outputs`` and the batch.

        A dict of losses (a detection model in train mode) is summed, each term kept; a tuple or
        list (aux heads) uses its first element as the logits, unless the loss sets
        ``takes_outputs = True`` (it then receives the model's raw outputs, e.g. Gated-SCNN's
        ``(seg_logits, edge_logits)``). A loss whose ``extra_inputs`` names batch keys (e.g.
        ``("dist_map",)``) receives them as keyword arguments. A combined loss reports each term.
        """
        if isinstance(outputs, Mapping):
            terms = {f"loss/{k}": v for k, v in outputs.items()}
            return {"loss": torch.stack(list(terms.values())).sum(), **terms}
        if getattr(self.loss_fn, "takes_outputs", False):
            prediction = outputs
        else:
            prediction = (outputs[0] if isinstance(outputs, (tuple, list)) else outputs).float()
        target = batch["mask"]
        extra = {k: batch[k] for k in getattr(self.loss_fn, "extra_inputs", ()) if k in batch}
        forward_terms = getattr(self.loss_fn, "forward_terms", None)
        if callable(forward_terms):
            terms = {f"loss/{k}": v for k, v in forward_terms(prediction, target, **extra).items()}
            return {"loss": torch.stack(list(terms.values())).sum(), **terms}
        return {"loss": self.loss_fn(prediction, target, **extra)}

    def training_step(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Forward one batch under autocast and return ``compute_loss``'s dict (must hold ``"loss"``)."""
        with self._autocast():
            outputs = self.model(batch["image"])
        return self.compute_loss(outputs, batch)

    def validation_step(self, batch: dict[str, Any]) -> torch.Tensor:
        """Return the predicted class map ``(N, H, W)`` int64 for a batch (model in eval mode)."""
        with self._autocast():
            outputs = self.model(batch["image"])
        logits = outputs[0] if isinstance(outputs, (tuple, list)) else outputs
        return logits.argmax(1)

    # ----------------------------------------------------------------- loop
    def fit(self) -> dict[str, Any]:
        """Train for ``epochs`` epochs, validating after each; return the last epoch's metrics.

        Writes ``last.pt``, ``best.pt`` (by ``val/<monitor>``), ``config.yaml`` and ``metrics.jsonl``
        under ``out_dir``.
        """
        if self.train_data is None:
            raise ValueError("fit: no train_data was given")
        self.train_loader = self._loader(self.train_data, shuffle=True)
        self.optimizer, self.scheduler = self.configure_optimizers()
        use_scaler = self.amp == "fp16" and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=use_scaler) if use_scaler else None
        self._open_trackers()
        metrics: dict[str, Any] = {}
        try:
            self._call("on_fit_start")
            for epoch in range(self.epoch, self.epochs):
                self.epoch = epoch
                self._call("on_epoch_start")
                train_metrics = self._train_one_epoch()
                metrics = {f"train/{k}": v for k, v in train_metrics.items()}
                if self.val_data is not None:
                    val = self.validate()
                    self._call("on_validation_end", val)
                    metrics.update({f"val/{k}": v for k, v in val.items() if not isinstance(v, list)})
                    if self.class_names:
                        metrics.update({f"val/iou/{n}": v for n, v in zip(self.class_names, val["iou"])})
                metrics["epoch"] = epoch
                self.epoch = epoch + 1
                self._call("on_epoch_end", metrics)
                self._log(metrics, self.global_step)
                self._print_epoch(epoch, metrics)
                if self.should_stop:
                    break
            self._call("on_fit_end")
        finally:
            self._close_trackers()
        return metrics

    def _train_one_epoch(self) -> dict[str, float]:
        self.model.train()
        loss_sum = torch.zeros((), device=self.device)
        seen = torch.zeros((), device=self.device)
        bar = tqdm(
            self.train_loader,
            desc=f"epoch {self.epoch + 1}/{self.epochs}",
            disable=not (self.is_main_process and sys.stderr.isatty()),
            leave=False,
        )
        start = time.perf_counter()
        images = 0
        self.optimizer.zero_grad(set_to_none=True)
        for i, batch in enumerate(bar):
            batch = self.move_to_device(batch)
            out = self.training_step(batch)
            loss = out["loss"]
            finite = torch.isfinite(loss)
            # Non-finite losses must not reach the weights; the check costs one sync per step,
            # which the optimizer step needs anyway to skip.
            if not bool(finite):
                self._skip_nonfinite()
                self.optimizer.zero_grad(set_to_none=True)
                continue
            self._consecutive_nonfinite = 0
            scaled = loss / self.accumulate
            (self.scaler.scale(scaled) if self.scaler else scaled).backward()
            if (i + 1) % self.accumulate == 0 or (i + 1) == len(self.train_loader):
                self._optimizer_step()
            loss_sum += loss.detach()
            seen += 1
            images += int(batch["image"].shape[0])
            self._call("on_train_batch_end", out)
            if self.global_step % self.log_every == 0 and self.is_main_process:
                step_metrics = {f"train/{k}": float(v.detach()) for k, v in out.items() if isinstance(v, torch.Tensor)}
                step_metrics["train/lr"] = self.optimizer.param_groups[0]["lr"]
                self._log(step_metrics, self.global_step)
                bar.set_postfix(loss=f"{step_metrics['train/loss']:.4f}", lr=f"{step_metrics['train/lr']:.2e}")
        elapsed = time.perf_counter() - start
        mean_loss = float(loss_sum / seen.clamp_min(1))
        return {"loss": mean_loss, "images_per_s": images / max(elapsed, 1e-9), "nonfinite_steps": float(self.nonfinite_steps)}

    def _optimizer_step(self) -> None:
        if self.grad_clip is not None:
            if self.scaler:
                self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        if self.scaler:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.scheduler is not None:
            self.scheduler.step()
        self.global_step += 1

    def _skip_nonfinite(self) -> None:
        self.nonfinite_steps += 1
        self._consecutive_nonfinite += 1
        if self._consecutive_nonfinite >= self.max_nonfinite:
            raise FloatingPointError(
                f"training stopped: {self._consecutive_nonfinite} consecutive non-finite losses at epoch "
                f"{self.epoch + 1}, step {self.global_step} (lower the lr, enable grad_clip, or check the data)"
            )

    @torch.no_grad()
    def validate(self, data: Dataset | None = None) -> dict[str, Any]:
        """Run validation and return the metrics of ``ConfusionMatrix.compute`` (``miou``, ``iou`` list, ...)."""
        data = data if data is not None else self.val_data
        if data is None:
            raise ValueError("validate: no validation data")
        loader = self._loader(data, shuffle=False)
        num_classes = self.num_classes or getattr(data, "num_classes")
        cm = ConfusionMatrix(num_classes, self.ignore_index, device=self.device, class_names=self.class_names)
        was_training = self.model.training
        self.model.eval()
        for batch in loader:
            batch = self.move_to_device(batch)
            cm.update(self.validation_step(batch), batch["mask"])
        cm.all_reduce()
        self.model.train(was_training)
        self.last_confusion = cm
        return cm.compute()

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """Return class maps ``(N, H, W)`` int64 for normalised images ``(N, 3, H, W)``."""
        self.model.eval()
        batch = self.move_to_device({"image": images})
        return self.validation_step(batch)

    # ----------------------------------------------------------------- checkpoints
    def checkpoint_state(self, metrics: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Return the plain-data state written to checkpoints (loadable with ``weights_only=True``)."""
        model = getattr(self.model, "module", self.model)
        return {
            "model": model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "epoch": self.epoch,
            "global_step": self.global_step,
            "metrics": {k: float(v) for k, v in (metrics or {}).items() if isinstance(v, (int, float))},
            "config": self.config,
            "num_classes": self.num_classes,
            "class_names": self.class_names,
            "ignore_index": self.ignore_index,
            "palette": _palette_list(self.train_data if self.train_data is not None else self.val_data),
            "callbacks": [cb.state_dict() if hasattr(cb, "state_dict") else None for cb in self.callbacks],
        }

    def save_checkpoint(self, path: str | Path, metrics: Mapping[str, Any] | None = None) -> Path:
        """Atomically write the checkpoint to ``path`` and the resolved config beside it."""
        path = save_checkpoint(self.checkpoint_state(metrics), path)
        if self.config is not None and not (path.parent / "config.yaml").exists():
            from segkit.config import save_config

            save_config(self.config, path.parent / "config.yaml")
        return path

    def weights_finite(self) -> bool:
        """True when every parameter is finite (checked before writing ``best.pt``)."""
        return all(bool(torch.isfinite(p).all()) for p in self.model.parameters())

    # ----------------------------------------------------------------- helpers
    def _autocast(self) -> Any:
        if self.amp is None:
            return nullcontext()
        dtype = torch.bfloat16 if self.amp == "bf16" else torch.float16
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def _loader(self, data: Dataset, shuffle: bool) -> DataLoader:
        generator = torch.Generator()
        generator.manual_seed(self.seed)
        return DataLoader(
            data,
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.workers,
            collate_fn=collate_semantic,
            pin_memory=self.device.type == "cuda",
            drop_last=False,
            generator=generator,
            persistent_workers=self.workers > 0,
        )

    def _call(self, hook: str, *payload: Any) -> None:
        for cb in self.callbacks:
            getattr(cb, hook)(self, *payload)

    def _open_trackers(self) -> None:
        if not self.is_main_process:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        specs: list[Any] = ["jsonl"] + [s for s in self.tracker_specs if s != "jsonl"]
        self.trackers = [build_tracker(s, run_dir=str(self.out_dir)) for s in specs]
        params = self.config if self.config is not None else {"lr": self.lr, "epochs": self.epochs}
        for t in self.trackers:
            t.log_params(params)

    def _close_trackers(self) -> None:
        for t in self.trackers:
            t.close()
        self.trackers = []

    def _log(self, metrics: Mapping[str, Any], step: int) -> None:
        scalars = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        for t in self.trackers:
            t.log_metrics(scalars, step)

    def _print_epoch(self, epoch: int, metrics: Mapping[str, Any]) -> None:
        if not self.is_main_process:
            return
        parts = [f"epoch {epoch + 1}/{self.epochs}", f"loss {metrics['train/loss']:.4f}"]
        if "val/miou" in metrics:
            parts.append(f"val mIoU {metrics['val/miou']:.4f}")
            parts.append(f"pixel acc {metrics['val/pixel_accuracy']:.4f}")
        parts.append(f"{metrics['train/images_per_s']:.1f} img/s")
        print("  ".join(parts), flush=True)


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _resolve_device(device: str | torch.device) -> torch.device:
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _as_dataset(data: Dataset | str | None, split: str) -> Dataset | None:
    if data is None or isinstance(data, Dataset):
        return data
    if isinstance(data, str):
        return build_dataset(data, split=split)
    if isinstance(data, Iterable):
        return data  # type: ignore[return-value]
    raise TypeError(f"expected a Dataset or a dataset name, got {type(data).__name__}")


def _palette_list(data: Any) -> list[list[int]] | None:
    palette = getattr(data, "palette", None)
    return None if palette is None else np.asarray(palette).astype(int).tolist()

