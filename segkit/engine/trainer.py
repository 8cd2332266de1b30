"""The Trainer: one readable loop for semantic and instance segmentation, with a few methods to override."""

from __future__ import annotations

import functools
import logging
import math
import sys
import time
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from segkit import distributed as ddp
from segkit.checkpoint import check_writable_dir
from segkit.config import AMP_CHOICES, COMPILE_CHOICES
from segkit.datasets import collate_instances, collate_semantic, dataset_info, predict_unpadded, training_targets
from segkit.datasets.bad_samples import BadSampleLog
from segkit.datasets.normalization import Normalization, share_normalization
from segkit.engine.batches import last_batch_drop, padding_notice
from segkit.engine.callbacks import Callback, EarlyStopping, ModelCheckpoint
from segkit.engine.compiling import compile_module, compile_probe, resolve_compile, uncompiled
from segkit.engine.data_setup import aux_head_classes, build_loss_for_dataset, data_info
from segkit.engine.ema import ModelEMA
from segkit.engine.finetune import (
    group_lrs,
    hold_frozen_norms,
    parameter_groups,
    resolve_prefixes,
    set_frozen,
    unfreeze_factors,
)
from segkit.engine.inputs import as_dataset, model_arguments, resolve_device, to_device
from segkit.engine.loss_target import target_at_network_size
from segkit.engine.nonfinite import NonfiniteSkipping
from segkit.engine.optim import build_optimizer, build_scheduler
from segkit.engine.precision import resolve_amp
from segkit.engine.reporting import epoch_line, log_visuals, open_trackers
from segkit.engine.rng import seed_everything
from segkit.engine.sampling import ResumableSampler, SeededAugmentation
from segkit.engine.time_budget import TimeBudget
from segkit.engine.training_state import TrainingStateMethods, TrainState, gather_rng_states
from segkit.inference import Predictor
from segkit.losses import class_presence_loss
from segkit.metrics import evaluate
from segkit.models import build_model

_log = logging.getLogger(__name__)

__all__ = ["Trainer", "seed_everything"]


def resolve_task(task: str | None, model: nn.Module) -> str:
    """The Trainer's task: ``task`` when given, else "instance" for a torchvision detection model, else "semantic".

    Raises:
        ValueError: "semantic" asked for a detection model (it would train on targets it never receives and
            fail deep inside torchvision with "targets should not be none").
    """
    from segkit.inference.instances import is_detection_model

    detection = is_detection_model(model)
    if task is None:
        return "instance" if detection else "semantic"
    if task == "semantic" and detection:
        raise ValueError(
            f"task='semantic' but the model is a detection model ({type(model).__name__}): pass task='instance' "
            "(YAML train.task: instance) or leave task unset, and an instance dataset (COCO, shapes with "
            "task='instance')"
        )
    return task


def _state_attribute(name: str, doc: str) -> Any:
    """A Trainer attribute that reads and writes ``trainer.state.<name>`` (the one object of progress)."""
    return property(lambda self: getattr(self.state, name), lambda self, v: setattr(self.state, name, v), doc=doc)


class Trainer(NonfiniteSkipping, TrainingStateMethods):
    """Train and validate a segmentation model (semantic, or instance with a torchvision-style detector).

    The loop, in pseudocode (hooks in brackets are callback hooks)::

        [on_fit_start]                               # after fit(resume=...) restored the state
        for epoch in range(epoch, epochs):           # epochs: the planned number once a max_minutes plan is made
            [on_epoch_start]                          # also for an epoch resumed in the middle
            for batch in train_loader:                # resumed: only the batches not yet consumed; images of
                                                      # different sizes padded (image 0, mask ignore_index); a
                                                      # last batch of 1 dropped when the model has BatchNorm
                batch = move_to_device(batch)
                out = training_step(batch)            # forward + compute_loss; out["loss"]
                non-finite loss on any rank: skip (all ranks), count, stop after max_nonfinite
                backward(out["loss"] / window); every `accumulate` batches (the window; a short last one):
                    clip, step, EMA, lr step (a window of non-finite batches only: no step),
                    log every `log_every` steps, max_minutes' mid-epoch check (see below)
                    [on_step_end]                     # every rank; ModelCheckpoint: last.pt every
                                                      # `checkpoint_every` steps and at a mid-epoch stop
                [on_train_batch_end(out)]             # not after a batch skipped as non-finite (host path)
            val = validate()                          # EMA weights if ema; confusion matrix or COCO AP;
                                                      # a padded batch: each image predicted at its own size
            [on_validation_end(val)]
            max_minutes: plan the epochs and re-lay the lr schedule (after the first epoch), re-plan (after
                each later one but the planned last, when the plan would miss the budget by over an epoch) or
                stop (budget spent); a first plan of two epochs is re-checked after a quarter of the second,
                which stops at the budget (last.pt written) when it was found not to fit
            [on_epoch_end({"train/...", "val/..."})] # decisions: best score, early stopping's count
            [on_checkpoint(metrics)]                  # ModelCheckpoint writes last.pt / best.pt here, with
                                                      # every callback's state after this epoch
            trackers.log_metrics; overlay image and conv-weight histograms to trackers that take them
            stop if should_stop (rank 0's decision, broadcast)
        [on_fit_end]

    Override ``configure_optimizers``, ``training_step``, ``validation_step``, ``compute_loss`` or
    ``move_to_device`` to change one part. If you need control over the loop itself (several
    optimizers, a GAN, custom sampling per step), write your own loop: ``examples/plain_loop.py``
    shows one with the same parts.

    Launched with ``torchrun`` the Trainer joins the process group (gloo on CPU, NCCL on CUDA), wraps
    the model in DDP, shards data per rank (``batch_size`` is per process), and only rank 0 logs and
    writes checkpoints. Exact resume: ``fit(resume="last")`` restores model, optimizer, scheduler,
    scaler, EMA, every rank's RNG states, callback states and the position inside the epoch; a mid-epoch
    checkpoint resumed with another ``batch_size`` or number of processes is refused (the samples already
    seen would not be the same). ``trainer.predictor()`` predicts with the validation weights.

    Args:
        model: an ``nn.Module``, a registered name (built with the dataset's ``num_classes``, and its
            ``in_channels`` when the images have other than 3), or a mapping ``{"name": ..., **kwargs}``.
        loss: a module, a name (``"ce"``, ``"ce+dice"``), a ``{name: weight}`` mapping, or None for the
            model's ``default_loss`` or ``ce`` (unused for instance models, which return their losses).
            A name is built with the dataset's ``ignore_index``; a module using another one is refused.
        train_data: a ``Dataset`` or a registered dataset name (split "train"); metadata (``num_classes``,
            ``class_names``, ``palette``, ``ignore_index``) is read through ``Subset`` / ``ConcatDataset``.
        val_data: a ``Dataset``, a name (split "val") or None.
        task: "semantic" or "instance" (model called as ``model(images, targets)`` in training and
            ``model(images)`` in evaluation, torchvision detection style; COCO AP validation), or None (the
            default): "instance" for a torchvision detection model (Mask R-CNN), else "semantic". "semantic"
            with a detection model is refused (it would fail inside torchvision's forward).
        epochs: number of passes over ``train_data``; with ``max_minutes``, only the length of the lr schedule
            during the first epoch (the plan then sets the number of epochs).
        batch_size: samples per forward pass (per process).
        lr: base learning rate.
        weight_decay: optimizer weight decay.
        optimizer: "adamw", "adam", "sgd", or an optimizer object.
        scheduler: "poly", "cosine", "step" or None; stepped every optimizer step.
        warmup_iters: linear warm-up steps.
        amp: None (fp32), "bf16" (autocast), "fp16" (autocast + GradScaler, CUDA only) or "auto": bf16 on a CPU
            with AMX-BF16 or AVX512-BF16 and on a CUDA device with native bf16, fp16 + GradScaler on older CUDA
            devices, else fp32; the choice and its reason are printed once (main process) and kept in
            ``trainer.amp`` (the precision used) and ``trainer.amp_choice`` (the line). None by default: a
            precision that changes the numbers is asked for, not picked by the machine a script runs on.
        compile: False, True or "auto" (CUDA only: on a CPU compiling takes 30-60 s for a 1.1-1.5x faster
            step). ``torch.compile`` (inductor) of the model once, after the DDP wrap (torch's advice), and of
            the validation model (EMA or not) at its first use; the first step's time, compile included, is
            printed once. Checkpoints, EMA and ``trainer.module`` hold the uncompiled module (no ``_orig_mod.``
            prefix: loadable by an uncompiled model and back). Detection models (Mask R-CNN) and machines where
            torch.compile cannot run (no C compiler, no triton) run eager, with one line saying so.
        accumulate: batches per optimizer step.
        grad_clip: max gradient norm, or None.
        aux_weight: weight of the class-presence loss of an smp ``aux_params`` head (its classes must be the
            data's ``num_classes``): ``loss = seg + aux_weight * loss/aux_presence``, where ``loss/aux_presence``
            is the BCE of the head's logits against the classes present in each mask (see
            ``segkit.losses.class_presence_loss``). Unused for other models.
        ema: decay of an exponential moving average of the weights (e.g. 0.999), used for
            validation and saved as ``ema`` in checkpoints; None disables it.
        ema_warmup: time constant (optimizer steps) of the EMA decay's warm-up, ``decay * (1 - exp(-step /
            ema_warmup))`` (Ultralytics' rule), so a short fine-tune is not averaged with its random head;
            0 for a constant decay.
        freeze: module-name prefixes to freeze (``"encoder"``, ``["encoder", "decoder.blocks.0"]``; checked:
            an unknown prefix is an error listing the model's parts). Frozen parameters get no gradient and
            no weight decay, and their normalisation layers stay in eval mode (running statistics fixed).
        unfreeze_at: epoch (0-based) at which the frozen parts join training, each with a linear warm-up
            of ``max(warmup_iters, one epoch of steps / 4)`` steps; None keeps them frozen.
        lr_mult: prefix -> learning-rate multiplier, e.g. ``{"encoder": 0.1}`` (parameter groups scheduled
            with the same shape; each group's lr is logged as ``train/lr/<prefix>``).
        norm_weight_decay: weight decay of norm parameters and biases (torchvision references' name);
            0.0 by default, None for ``weight_decay``.
        channels_last: use the channels-last memory format for model and images.
        callbacks: extra ``Callback`` objects (checkpointing is always added).
        trackers: names, mappings or tracker objects; ``jsonl`` is always on.
        out_dir: run folder (checkpoints, ``metrics.jsonl``, ``config.yaml``).
        seed: seeds Python, NumPy and torch, the per-epoch sample order (``seed + epoch``) and the random
            augmentation of every sample (the train dataset's albumentations ``transforms`` are re-seeded
            from (seed, epoch, sample) before each sample; see ``SeededAugmentation``).
        device: "auto" (CUDA if available), "cpu", "cuda", "cuda:1", ...
        workers: DataLoader worker processes.
        monitor: validation metric for ``best.pt``; None = "miou" (semantic) or "segm_ap" (instance).
        max_nonfinite: stop after this many consecutive non-finite losses.
        log_every: steps between progress/metric logs (the only loss syncs of the loop).
        keep_last: numbered ``epoch_XXX.pt`` checkpoints to keep besides last/best (0 = none).
        early_stop_patience: epochs without improvement of ``monitor`` before stopping, or None.
        checkpoint_every: also write ``last.pt`` every this many optimizer steps (mid-epoch), or None.
        sync_bn: convert BatchNorm layers to SyncBatchNorm when distributed.
        max_minutes: a wall-clock budget for the run, or None. The first epoch (training and validation) is
            timed and the run planned from it: about ``floor(budget / first epoch)`` epochs, the lr schedule
            re-laid to end at the planned last step. At each later epoch's end but the planned last the plan is
            checked against what is left of the budget and the mean time of the epochs after the first, and
            remade (the schedule re-laid) when it would miss the budget by more than one epoch or a quarter of
            what is left, so epochs that become slower or faster still end the run within about one epoch of the
            budget at its final lr (with less than an epoch left, one more runs). A first plan of two epochs is
            remade after a quarter of the second from its pace; a first epoch longer than what is left makes
            the second stop at the budget (said before it starts; last.pt resumes it). A budget already spent at
            an epoch's end stops the run there, short of its final lr. The plan is
            stored in checkpoints (a resumed run continues it exactly; see ``segkit.engine.time_budget``).
            Every metrics row carries ``elapsed_s``.
        config: the resolved config dict, saved beside checkpoints.
    """

    # Read and written through the one state object (``trainer.state``, what checkpoints hold by name).
    epoch = _state_attribute("epoch", "Epochs finished (the 0-based index of the epoch in progress).")
    global_step = _state_attribute("global_step", "Optimizer steps taken.")
    batches_done = _state_attribute("batches_done", "Batches of the current epoch consumed (exact resume).")
    nonfinite_steps = _state_attribute("nonfinite_steps", "Batches skipped as non-finite over the run.")

    def __init__(
        self,
        model: nn.Module | str | Mapping[str, Any],
        loss: nn.Module | str | Mapping[str, Any] | None = None,
        train_data: Dataset | str | None = None,
        val_data: Dataset | str | None = None,
        *,
        task: str | None = None,
        epochs: int = 10,
        batch_size: int = 8,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        optimizer: str | torch.optim.Optimizer = "adamw",
        scheduler: str | None = "poly",
        warmup_iters: int = 0,
        amp: str | None = None,
        compile: bool | str = False,
        accumulate: int = 1,
        grad_clip: float | None = None,
        aux_weight: float = 0.4,
        ema: float | None = None,
        ema_warmup: float = 2000.0,
        freeze: str | Sequence[str] | None = None,
        unfreeze_at: int | None = None,
        lr_mult: Mapping[str, float] | None = None,
        norm_weight_decay: float | None = 0.0,
        channels_last: bool = False,
        callbacks: Sequence[Callback] = (),
        trackers: Sequence[Any] = (),
        out_dir: str | Path = "runs/exp",
        seed: int = 0,
        device: str | torch.device = "auto",
        workers: int = 0,
        monitor: str | None = None,
        max_nonfinite: int = 5,
        log_every: int = 10,
        keep_last: int = 0,
        early_stop_patience: int | None = None,
        checkpoint_every: int | None = None,
        sync_bn: bool = False,
        max_minutes: float | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        if task not in (None, "semantic", "instance"):
            raise ValueError(f"task: expected 'semantic', 'instance' or None, got {task!r}")
        if amp not in AMP_CHOICES:
            raise ValueError(f"amp: expected None, 'auto', 'bf16' or 'fp16', got {amp!r}")
        if compile not in COMPILE_CHOICES or not isinstance(compile, (bool, str)):
            raise ValueError(f"compile: expected False, True or 'auto', got {compile!r}")
        if accumulate < 1:
            raise ValueError(f"accumulate: expected >= 1, got {accumulate}")
        if checkpoint_every is not None and checkpoint_every < 1:
            raise ValueError(f"checkpoint_every: expected >= 1 or None, got {checkpoint_every}")
        self.epochs, self.batch_size, self.lr = int(epochs), int(batch_size), float(lr)
        self.weight_decay = float(weight_decay)
        self.optimizer_name, self.scheduler_name = optimizer, scheduler
        self.warmup_iters = int(warmup_iters)
        self.accumulate, self.grad_clip = int(accumulate), grad_clip
        self.channels_last = channels_last
        self.out_dir = Path(out_dir)
        self.seed, self.workers = int(seed), int(workers)
        self.max_nonfinite = int(max_nonfinite)
        self.log_every = max(1, int(log_every))
        self.checkpoint_every = checkpoint_every
        self.time_budget = TimeBudget(max_minutes)  # checks max_minutes; elapsed_s of every metrics row
        self.config = dict(config) if config is not None else None
        # Checking and storing only: the process group is joined, the RNG seeded and the validation data given
        # the training statistics when fit (or validate) starts (see _setup).
        self.dist = ddp.process_info()  # torchrun's environment, read (not joined)
        self.device = ddp.process_device(resolve_device(device), self.dist)
        self.is_main_process = self.dist.is_main
        self.amp, self.amp_choice = resolve_amp(amp, self.device)  # "auto": what this device runs fast, and why
        if self.amp_choice and self.is_main_process:
            _log.info(self.amp_choice)

        self.train_data = as_dataset(train_data, "train")
        self.val_data = as_dataset(val_data, "val")
        meta = data_info(self.train_data, self.val_data)  # read through Subset / ConcatDataset wrappers
        self.num_classes: int | None = meta.num_classes
        self.ignore_index: int = meta.ignore_index
        self.class_names: list[str] | None = list(meta.class_names or []) or None
        self.palette = meta.palette
        # Multi-band data: the model's input width and the statistics Predictor must reuse come from the data.
        norm = meta.normalization
        self.normalization: Normalization | None = None if norm is None else Normalization.coerce(norm)
        self.in_channels: int | None = meta.in_channels
        self.input_size = meta.input_size  # images resized to it before the model (checkpoints keep it)
        self.mask_format = meta.mask_format  # how the label files were stored (checkpoints keep it)

        self.model_spec = model if isinstance(model, (str, Mapping)) else None
        module = self._build_model(model).to(self.device)
        task = self.task = resolve_task(task, module)  # the later uses below read the resolved task
        self.monitor = monitor or ("segm_ap" if task == "instance" else "miou")
        if channels_last:
            module = module.to(memory_format=torch.channels_last)
        # Checked now, before any work: a misspelt prefix fails at construction, listing the model's parts.
        self.frozen = resolve_prefixes(module, freeze, "freeze")
        self.lr_mult = dict(zip(resolve_prefixes(module, list(lr_mult or {}), "lr_mult"), (lr_mult or {}).values()))
        self.norm_weight_decay, self.unfreeze_at = norm_weight_decay, unfreeze_at
        set_frozen(module, self.frozen, True)  # before DDP, which only reduces parameters that need gradients
        self.ema = ModelEMA(module, ema, ema_warmup) if ema is not None else None
        self.compiled, compile_line = resolve_compile(compile, self.device, module, task)
        if compile_line and self.is_main_process:
            _log.info(compile_line)
        self.model: nn.Module = module  # wrapped (DDP, compile) in _setup
        self._sync_bn, self._set_up = sync_bn, False
        # A model may name the loss it is trained with (Gated-SCNN's dual-task loss); else cross-entropy.
        chosen: Any = (
            loss if loss is not None else (None if task == "instance" else getattr(module, "default_loss", "ce"))
        )
        # A name gets the dataset's ignore_index; a module must already use it.
        self.loss_fn = None if chosen is None else build_loss_for_dataset(chosen, self.ignore_index).to(self.device)
        # An smp aux_params head is trained on the classes present in each mask (checked now: classes, logits).
        self.aux_weight = float(aux_weight)
        self.aux_classes = aux_head_classes(module, self.num_classes)

        self.callbacks: list[Callback] = [ModelCheckpoint(f"val/{self.monitor}", keep_last=keep_last)]
        if early_stop_patience is not None:
            self.callbacks.append(EarlyStopping(f"val/{self.monitor}", patience=early_stop_patience))
        self.callbacks.extend(callbacks)
        self.tracker_specs = list(trackers)
        self.trackers: list[Any] = []

        self.state = TrainState(epoch_loss=torch.zeros(2, device=self.device))  # epoch, step, position, losses
        self.should_stop = False
        self.stopped_mid_epoch = False  # max_minutes spent inside an epoch (see TimeBudget.batch_end)
        self._window_finite = 0  # finite batches in the current accumulation window (host path)
        # On-device non-finite bookkeeping (see _flag_nonfinite): [this step is skipped, total, run, worst run].
        self._nonfinite_state = torch.zeros(4, device=self.device)
        self._skip_on_device = False
        self._padding_noted = False
        self.optimizer: torch.optim.Optimizer
        self.scheduler: Any = None
        self.scaler: torch.amp.GradScaler | None = None
        self._compiled_eval: nn.Module | None = None
        self._compile_untimed = self.compiled  # the first step's time (compile included) is printed once
        self.compile_seconds: float | None = None

    # ----------------------------------------------------------------- construction
    @classmethod
    def from_config(cls, cfg: Any, **overrides: Any) -> Trainer:
        """Build a Trainer from a ``segkit.config.Config`` (as the CLI does).

        Args:
            cfg: the config.
            **overrides: Trainer keyword arguments that win over ``cfg.train``.
        """
        from segkit.engine.from_config import trainer_arguments

        args, kwargs = trainer_arguments(cfg, overrides)
        return cls(*args, **kwargs)

    def _build_model(self, model: nn.Module | str | Mapping[str, Any]) -> nn.Module:
        if isinstance(model, nn.Module):
            return model
        spec = {"name": model} if isinstance(model, str) else dict(model)
        kwargs = model_arguments(spec, self.num_classes, self.in_channels)
        # Initial weights from `seed`, without touching the global RNG (a constructor has no side effects).
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            return build_model(kwargs.pop("name"), **kwargs)

    def _setup(self) -> None:
        """What starts a run, once (``fit`` and ``validate`` call it): join the process group under torchrun, seed
        everything, give the validation data the training statistics, and wrap the model (DDP, then
        ``torch.compile``)."""
        if self._set_up:
            return
        self._set_up = True
        self.dist, self.device = ddp.init_distributed(self.device)
        seed_everything(self.seed)
        share_normalization(self.val_data, self.normalization)  # validate as trained
        self.model = self._wrap_model(self.model, self._sync_bn)

    @property
    def module(self) -> nn.Module:
        """The trained model without its torch.compile and DDP wrappers."""
        return ddp.unwrap(uncompiled(self.model))

    def _wrap_model(self, module: nn.Module, sync_bn: bool) -> nn.Module:
        """DDP when distributed, then ``torch.compile`` when compiling (torch's order: DDPOptimizer then
        splits the graph at DDP's gradient buckets)."""
        model = ddp.wrap_model(module, self.dist, self.device, sync_bn)
        return compile_module(model) if self.compiled else model

    def _validation_model(self) -> nn.Module:
        """``eval_model``, compiled when compiling (its eval graph compiles at the first validation)."""
        model = self.eval_model
        if not self.compiled:
            return model
        if uncompiled(self.model) is model:  # no DDP, no EMA: the training wrapper holds the eval graph too
            return self.model
        if self._compiled_eval is None or uncompiled(self._compiled_eval) is not model:
            self._compiled_eval = compile_module(model)
        return self._compiled_eval

    # ----------------------------------------------------------------- overridable steps
    def configure_optimizers(self) -> tuple[torch.optim.Optimizer, Any]:
        """Return ``(optimizer, scheduler)``; the scheduler (or None) is stepped every optimizer step."""
        groups = parameter_groups(
            self.module, self.lr, self.weight_decay, self.lr_mult, self.norm_weight_decay, self.frozen
        )
        fused = True if self.device.type == "cuda" else None
        optimizer = build_optimizer(self.optimizer_name, groups, self.lr, self.weight_decay, fused=fused)
        steps_per_epoch = math.ceil(self.batches_per_epoch / self.accumulate)
        at = None if self.unfreeze_at is None else self.unfreeze_at * steps_per_epoch
        factors = unfreeze_factors(optimizer.param_groups, at, max(self.warmup_iters, steps_per_epoch // 4))
        scheduler = build_scheduler(
            self.scheduler_name, optimizer, self.epochs * steps_per_epoch, self.warmup_iters, group_factors=factors
        )
        total = self.epochs * steps_per_epoch
        # A warm-up copied from a COCO recipe (1000 steps) onto a small dataset never ends: the whole run then trains
        # at a fraction of lr and nothing says so. With max_minutes the length is planned later (not known here).
        if scheduler is not None and self.warmup_iters >= total and self.time_budget.max_minutes is None:
            if self.is_main_process:
                _log.info(
                    f"warning: warmup_iters={self.warmup_iters} >= the run's {total} optimizer steps ({self.epochs} "
                    f"epochs x {steps_per_epoch}): the lr stays in its linear warm-up and never reaches "
                    f"lr={self.lr:g}; lower warmup_iters (e.g. a tenth of the steps)"
                )
        return optimizer, scheduler

    def move_to_device(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Move the tensors of a collated batch (also inside lists and dicts) to ``self.device``."""
        out = {k: to_device(v, self.device) for k, v in batch.items()}
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

        An smp model built with ``aux_params`` returns ``(mask_logits, class_logits (N, K))``: the
        segmentation loss is logged as ``loss/seg`` (or its terms), the class-presence BCE as
        ``loss/aux_presence``, and ``loss = seg + aux_weight * aux_presence``.
        """
        if isinstance(outputs, Mapping):
            terms = {f"loss/{k}": v for k, v in outputs.items()}
            return {"loss": torch.stack(list(terms.values())).sum(), **terms}
        if self.loss_fn is None:
            raise ValueError("compute_loss: the model returned no loss dict and no loss was given")
        takes_outputs = getattr(self.loss_fn, "takes_outputs", False)
        class_logits = None
        if (
            self.aux_classes is not None
            and not takes_outputs
            and isinstance(outputs, (tuple, list))
            and len(outputs) == 2
            and isinstance(outputs[1], torch.Tensor)
            and outputs[1].dim() == 2
        ):
            class_logits = outputs[1]
        if takes_outputs:
            prediction = outputs
        else:
            prediction = (outputs[0] if isinstance(outputs, (tuple, list)) else outputs).float()
        target = target_at_network_size(batch["mask"], outputs, self.module)
        extra = {k: batch[k] for k in getattr(self.loss_fn, "extra_inputs", ()) if k in batch}
        forward_terms = getattr(self.loss_fn, "forward_terms", None)
        if callable(forward_terms):
            terms = {f"loss/{k}": v for k, v in forward_terms(prediction, target, **extra).items()}
        elif class_logits is None:
            return {"loss": self.loss_fn(prediction, target, **extra)}
        else:
            terms = {"loss/seg": self.loss_fn(prediction, target, **extra)}
        total = torch.stack(list(terms.values())).sum()
        if class_logits is not None:
            terms["loss/aux_presence"] = class_presence_loss(class_logits, target, self.ignore_index)
            total = total + self.aux_weight * terms["loss/aux_presence"]
        return {"loss": total, **terms}

    def training_step(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Forward one batch under autocast and return ``compute_loss``'s dict (must hold ``"loss"``).

        Instance models train on ``training_targets(batch["target"])``: crowd instances (``iscrowd=1``)
        are not positives; validation keeps them for COCOeval.
        """
        with self._autocast():
            if self.task == "instance":
                outputs = self.model(batch["image"], training_targets(batch["target"]))
            else:
                outputs = self.model(batch["image"])
        return self.compute_loss(outputs, batch)

    def validation_step(self, batch: dict[str, Any], model: nn.Module | None = None) -> Any:
        """Predict a batch with ``model`` (default: the EMA model if any, else the trained one), in eval mode.

        Returns:
            Semantic: class map ``(N, H, W)`` int64. Instance: the detector's list of dicts.
        """
        model = model if model is not None else self.eval_model
        if self.task != "instance" and batch.get("padded"):
            # Each image at its own size, so its prediction does not depend on the padding (exact metrics).
            return predict_unpadded(lambda images: self.validation_step({"image": images}, model), batch)
        with self._autocast():
            outputs = model(batch["image"])
        if self.task == "instance":
            return outputs
        logits = outputs[0] if isinstance(outputs, (tuple, list)) else outputs
        return logits.argmax(1)

    @property
    def eval_model(self) -> nn.Module:
        """The model used for validation: the EMA weights when ``ema`` is set."""
        return self.ema.module if self.ema is not None else self.module

    # ----------------------------------------------------------------- loop
    def fit(self, resume: str | Path | None = None) -> dict[str, Any]:
        """Train for ``epochs`` epochs, validating after each; return the last epoch's metrics.

        Writes ``last.pt``, ``best.pt`` (by ``val/<monitor>``), ``config.yaml`` and ``metrics.jsonl``
        under ``out_dir``.

        Args:
            resume: None, ``"last"`` (``out_dir/last.pt``, or the newest readable checkpoint there if
                it is damaged), ``"auto"`` (``"last"`` if the folder holds a checkpoint, else a new run)
                or a checkpoint path: continue exactly where that run stopped.
        """
        if self.train_data is None:
            raise ValueError("fit: no train_data was given")
        self._setup()
        self.time_budget.start()
        size = len(self.train_data)  # type: ignore[arg-type]
        self.train_sampler = ResumableSampler(size, True, self.seed, self.dist.rank, self.dist.world_size, seeded=True)
        # Augmentation drawn from (seed, epoch, sample): reproducible, and exact after a resume.
        self.train_loader = self._loader(SeededAugmentation(self.train_data), self.train_sampler)
        # A last batch of one sample breaks BatchNorm: drop it (every rank decides alike, counts are padded).
        self.train_sampler.drop_tail = last_batch_drop(self.train_sampler.full_length(), self.batch_size, self.module)
        self.batches_per_epoch = math.ceil(self.train_sampler.full_length() / self.batch_size)
        if self.train_sampler.drop_tail and self.is_main_process:
            _log.info(
                f"train: the last batch of each epoch would hold 1 sample, too few for BatchNorm in training: "
                f"dropped (as torchvision's references do; a different sample each epoch); "
                f"{self.batches_per_epoch} batches of {self.batch_size} per epoch"
            )
        self.optimizer, self.scheduler = self.configure_optimizers()
        use_scaler = self.amp == "fp16" and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=use_scaler) if use_scaler else None
        if self.is_main_process:
            check_writable_dir(self.out_dir)  # fail now, not at the first checkpoint an hour in
        if resume is not None:
            self.load_training_state(resume)
        self._skip_on_device = self._can_skip_on_device()
        self._nonfinite_state[1] = self.nonfinite_steps  # resumed runs keep counting
        self._open_trackers()
        metrics: dict[str, Any] = {}
        try:
            self._call("on_fit_start")
            while self.epoch < self.epochs:  # a max_minutes plan may change self.epochs after any epoch
                epoch = self.epoch
                self._call("on_epoch_start")
                self.time_budget.epoch_start(resumed_mid_epoch=self.batches_done > 0)
                train = self._train_one_epoch()
                if self.stopped_mid_epoch:  # max_minutes spent inside the epoch: last.pt holds the position
                    break
                self.time_budget.train_end()
                metrics = {f"train/{k}": v for k, v in train.items()}
                if self.val_data is not None:
                    val = self.validate()
                    self._call("on_validation_end", val)
                    metrics.update({f"val/{k}": v for k, v in val.items() if not isinstance(v, list)})
                    if self.class_names and "iou" in val:
                        metrics.update({f"val/iou/{n}": v for n, v in zip(self.class_names, val["iou"])})
                metrics["epoch"] = epoch
                self.epoch, self.batches_done = epoch + 1, 0
                self.time_budget.epoch_end(self)  # max_minutes: plan, re-plan or stop; before the checkpoint
                self.sync_for_checkpoint()  # every rank: ModelCheckpoint writes on rank 0 in on_checkpoint
                self._call("on_epoch_end", metrics)
                self._call("on_checkpoint", metrics)
                self._log(metrics, self.global_step)
                if self.is_main_process:
                    log_visuals(self)
                    _log.info(epoch_line(epoch, self.epochs, metrics))
                self.should_stop = ddp.broadcast_bool(self.should_stop, self.device)
                if self.should_stop:
                    break
            self._call("on_fit_end")
            if self.dist.enabled:  # every rank leaves fit together, its checkpoints written
                torch.distributed.barrier()
        finally:
            self._close_trackers()
        return metrics

    def _train_one_epoch(self) -> dict[str, float]:
        """One pass over the training data (from ``batches_done`` on); returns its loss and images/s."""
        bar = self._start_epoch()
        start, images = time.perf_counter(), 0
        skipped = BadSampleLog("train data", total=len(self.train_data))  # type: ignore[arg-type]
        for i, batch in enumerate(bar, start=self.batches_done):
            if "bad_samples" in batch:  # files skipped with on_bad_sample="skip" (already reported by the loader)
                skipped.update(batch["bad_samples"], echo=False)
            self._note_padding(batch)
            batch = self.move_to_device(batch)
            # The window of `accumulate` batches this one belongs to (the epoch's last may be shorter).
            window_start = i - i % self.accumulate
            window = min(self.accumulate, self.batches_per_epoch - window_start)
            boundary = i + 1 == window_start + window
            out, finite, backward = self._forward_backward(batch, window, boundary)
            kept = torch.where(finite > 0, out["loss"].detach().float(), 0.0)  # a skipped loss stays out of the mean
            self.state.epoch_loss += torch.stack([kept, finite])
            images += len(batch["image"])
            self.batches_done = i + 1
            if boundary and self._finish_window(window, backward):
                self._after_step(out, bar, images / max(time.perf_counter() - start, 1e-9))
                if self.stopped_mid_epoch:
                    break
            if backward:  # a batch skipped on the host is not a training batch for the callbacks either
                self._call("on_train_batch_end", out)
        return self._end_epoch(images, time.perf_counter() - start, skipped)

    def _start_epoch(self) -> Any:
        """Unfreeze when due, train mode, the sampler at the epoch's position and seed; returns the batch iterator."""
        if self.frozen and self.unfreeze_at is not None and self.epoch >= self.unfreeze_at:
            self._unfreeze()
        self.model.train()
        hold_frozen_norms(self.module, self.frozen)
        self.train_sampler.set_position(self.epoch, self.batches_done * self.batch_size)
        self.train_loader.generator.manual_seed(self.seed + self.epoch)  # worker seeds per epoch
        self.optimizer.zero_grad(set_to_none=True)
        return tqdm(
            self.train_loader,
            desc=f"epoch {self.epoch + 1}/{self.epochs}",
            leave=False,
            disable=not (self.is_main_process and sys.stderr.isatty()),
        )

    def _forward_backward(
        self, batch: dict[str, Any], window: int, boundary: bool
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor, bool]:
        """``training_step`` and the backward of ``loss / window``, unless the loss is non-finite on any rank.

        Returns:
            ``(outputs, finite, backward)``: ``finite`` a 0-d tensor (1.0 or 0.0), ``backward`` False when the
            batch was skipped on the host.
        """
        step_start = time.perf_counter()
        # Gradients are all-reduced once per optimizer step, not per accumulated batch.
        sync = nullcontext() if boundary or not self.dist.enabled else self.model.no_sync()  # type: ignore[operator]
        with sync:
            out = self.training_step(batch)
            loss = out["loss"]
            backward = True
            if self._skip_on_device:
                finite = self._flag_nonfinite(loss)  # one batch per step: the optimizer masks the update
            # Every rank must take the same branch (a rank skipping backward would hang DDP): the
            # flag is OR-ed across ranks. This is the loop's one host sync per step; the skip needs it.
            elif bool(ddp.any_across_ranks(~torch.isfinite(loss.detach()))):
                self._skip_nonfinite()  # left out of its window, as if it were not in the data
                finite, backward = torch.zeros((), device=self.device), False
            else:
                self.state.consecutive_nonfinite = 0
                self._window_finite += 1
                finite = torch.ones((), device=self.device)
            if backward:
                # The mean over the window's batches (a short last window: over its own length).
                scaled = loss / window
                (self.scaler.scale(scaled) if self.scaler else scaled).backward()
        if self._compile_untimed:
            self._report_compile_time(step_start)
        return out, finite, backward

    def _after_step(self, out: Mapping[str, Any], bar: Any, images_per_s: float) -> None:
        """After an optimizer step, on every rank: log every ``log_every`` steps, the budget's mid-epoch check, and
        ``on_step_end`` (``ModelCheckpoint`` writes ``last.pt`` every ``checkpoint_every`` steps and at a stop)."""
        if self.global_step % self.log_every == 0:
            self._check_nonfinite()
            if self.is_main_process:
                self._log_step(out, bar, images_per_s)
        self.stopped_mid_epoch = self.time_budget.batch_end(self)  # max_minutes: agreed by every rank
        self._call("on_step_end")
        self.should_stop = self.should_stop or self.stopped_mid_epoch

    def _end_epoch(self, images: int, elapsed: float, skipped: BadSampleLog) -> dict[str, float]:
        """The epoch's loss (summed over the ranks), images/s and non-finite count; the skipped-files line."""
        self._check_nonfinite()
        total = self.state.epoch_loss.clone()
        if self.dist.enabled:
            torch.distributed.all_reduce(total)
        self.state.epoch_loss.zero_()
        if skipped.epoch_count and self.is_main_process:
            _log.warning(skipped.end_epoch())
        return {
            "loss": float(total[0] / total[1].clamp_min(1)),
            "images_per_s": images * self.dist.world_size / max(elapsed, 1e-9),
            "nonfinite_steps": float(self.nonfinite_steps),
        }

    def sync_for_checkpoint(self) -> None:
        """Settle the on-device non-finite counts and, under DDP, gather every rank's RNG state and partial epoch
        loss: a collective, so call it on every rank right before rank 0 writes a checkpoint."""
        self._check_nonfinite()
        gather_rng_states(self)

    def _finish_window(self, window: int, synced: bool) -> bool:
        """End an accumulation window with one optimizer step over its finite batches.

        A non-finite batch is left out as if it were not in the data: the step uses the mean gradient of
        the window's finite batches, and a window without any is no step at all (weights, optimizer state,
        scheduler, EMA and ``global_step`` stay as they are). Returns False for such a window.

        Args:
            window: the number of batches in the window (its losses were divided by it).
            synced: whether the window's last batch ran backward (DDP all-reduces the window there).
        """
        if self._skip_on_device:  # one batch per window: the fused optimizer masks a non-finite one
            self._optimizer_step()
            return True
        finite, self._window_finite = self._window_finite, 0
        if finite == 0:
            self.optimizer.zero_grad(set_to_none=True)
            return False
        if finite < window or (self.dist.enabled and not synced):
            grads = [p.grad for p in self.model.parameters() if p.grad is not None]
            if self.dist.enabled and not synced:
                ddp.average_across_ranks(grads)  # the all-reduce of the skipped last batch's backward
            if finite < window:
                torch._foreach_mul_(grads, window / finite)
        self._optimizer_step()
        return True

    def _optimizer_step(self) -> None:
        if self.grad_clip is not None:
            if self.scaler:
                self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        if self.scaler:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        elif self._skip_on_device:
            # As under GradScaler: a fused optimizer leaves weights and state untouched when found_inf > 0.
            self.optimizer.found_inf, self.optimizer.grad_scale = self._nonfinite_state[0], None  # type: ignore[attr-defined]
            self.optimizer.step()
            self.optimizer.found_inf = None  # type: ignore[attr-defined]
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.scheduler is not None:
            self.scheduler.step()  # on the device path, taken back at the next check if the step was skipped
        if self.ema is not None:
            skip = self._nonfinite_state[0] if self._skip_on_device else None
            self.ema.update(self.module, self.global_step + 1, skip=skip)
        self._nonfinite_state[0] = 0
        self.global_step += 1

    def _log_step(self, out: Mapping[str, Any], bar: Any, images_per_s: float) -> None:
        step_metrics = {f"train/{k}": float(v.detach()) for k, v in out.items() if isinstance(v, torch.Tensor)}
        step_metrics.update(group_lrs(self.optimizer))
        self._log(step_metrics, self.global_step)
        bar.set_postfix(
            loss=f"{step_metrics['train/loss']:.4f}", lr=f"{step_metrics['train/lr']:.2e}", img_s=f"{images_per_s:.1f}"
        )

    def _unfreeze(self) -> None:
        """The frozen parts join training (their lr ramps up from here: see ``configure_optimizers``)."""
        set_frozen(self.module, self.frozen, False)
        if self.is_main_process:
            _log.info(f"epoch {self.epoch + 1}: unfrozen {', '.join(self.frozen)}")
        self.frozen = []
        if self.dist.enabled:  # DDP registered only the parameters that needed gradients: wrap again
            self.model = self._wrap_model(self.module, False)

    @torch.no_grad()
    def validate(self, data: Dataset | None = None) -> dict[str, Any]:
        """Run validation (sharded across ranks, reduced) with ``eval_model``.

        Returns:
            Semantic: ``ConfusionMatrix.compute`` (``miou``, ``iou`` list, ...). Instance:
            ``CocoEvaluator.compute`` (``bbox_ap``, ``bbox_ap50``, ``bbox_ap75``, ``segm_ap``, ...).
        """
        data = data if data is not None else self.val_data
        if data is None:
            raise ValueError("validate: no validation data")
        self._setup()
        size = len(data)  # type: ignore[arg-type]
        sampler = ResumableSampler(size, False, rank=self.dist.rank, world_size=self.dist.world_size, pad=False)
        info = dataset_info(data)  # through Subset / ConcatDataset wrappers
        num_classes = self.num_classes or info.num_classes
        if num_classes is None:
            raise ValueError("validate: the dataset has no num_classes (nor has the trainer); set it on the dataset")
        model = self._validation_model()
        metrics, evaluator = evaluate(
            model, self._loader(data, sampler), num_classes=num_classes, task=self.task,
            ignore_index=info.ignore_index, class_names=self.class_names, device=self.device,
            predict=lambda batch: self.validation_step(batch, model), prepare=self.move_to_device,
            on_batch=self._note_padding,
        )  # fmt: skip
        if self.task == "instance":
            self.last_coco = evaluator
        else:
            self.last_confusion = evaluator
        return metrics

    def predictor(self, **kwargs: Any) -> Predictor:
        """A ``Predictor`` of the weights validation uses (``eval_model``), with the data's class names,
        palette and normalisation: predictions as a checkpoint of this run would give them.

        Args:
            **kwargs: ``Predictor`` options (``window``, ``tta``, ``min_confidence``, ...).

        Returns:
            A ``Predictor`` on this trainer's device; ``predictor.predict(...)`` is the one way to predict.
        """
        options: dict[str, Any] = {"class_names": self.class_names, "palette": self.palette, "device": self.device,
                                   "normalization": self.normalization, "input_size": self.input_size}  # fmt: skip
        return Predictor(self.eval_model, **{**options, **kwargs})

    # ----------------------------------------------------------------- helpers
    def _report_compile_time(self, step_start: float) -> None:
        """Print, once, how long the first compiled step (forward and backward compiled) took."""
        self._compile_untimed = False
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.compile_seconds = time.perf_counter() - step_start
        _, probe_seconds = compile_probe(self.device)
        if self.is_main_process:
            _log.info(
                f"compile: the first training step took {self.compile_seconds:.1f} s (torch.compile of the "
                f"forward and backward; checking torch.compile took {probe_seconds:.1f} s at start; the "
                f"eval graph compiles at the first validation)"
            )

    def _autocast(self) -> Any:
        if self.amp is None:
            return nullcontext()
        dtype = torch.bfloat16 if self.amp == "bf16" else torch.float16
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def _loader(self, data: Dataset, sampler: ResumableSampler) -> DataLoader:
        # A private generator per loader: creating a loader iterator must not draw from the global RNG.
        collate = functools.partial(  # padded masks get the data's ignore_index
            collate_instances if self.task == "instance" else collate_semantic,
            ignore_index=dataset_info(data).ignore_index,
        )
        return DataLoader(data, self.batch_size, sampler=sampler, num_workers=self.workers, collate_fn=collate,
                          pin_memory=self.device.type == "cuda", generator=torch.Generator().manual_seed(self.seed),
                          persistent_workers=self.workers > 0)  # fmt: skip

    def _note_padding(self, batch: Mapping[str, Any]) -> None:
        if batch.get("padded") and not self._padding_noted:
            self._padding_noted = True
            if self.is_main_process:
                _log.info(padding_notice(batch, self.ignore_index))

    def _call(self, hook: str, *payload: Any) -> None:
        for cb in self.callbacks:
            getattr(cb, hook)(self, *payload)

    def _open_trackers(self) -> None:
        if self.is_main_process:
            self.trackers = open_trackers(self)

    def _close_trackers(self) -> None:
        for t in self.trackers:
            t.close()
        self.trackers = []

    def _log(self, metrics: Mapping[str, Any], step: int) -> None:
        scalars = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        scalars["elapsed_s"] = self.time_budget.elapsed()  # wall seconds of training, across resumes
        for t in self.trackers:
            t.log_metrics(scalars, step)
