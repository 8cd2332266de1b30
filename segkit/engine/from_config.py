"""From a config to the Trainer's arguments: datasets, model (classes and input channels from the data), loss
(the data's ``ignore_index``) and the resolved config saved beside checkpoints."""

from __future__ import annotations

import dataclasses
from typing import Any

from segkit.datasets import build_dataset, dataset_info
from segkit.engine.data_setup import build_loss_for_dataset
from segkit.engine.inputs import model_arguments
from segkit.engine.rng import seed_everything
from segkit.models import build_model

__all__ = ["trainer_arguments"]


def trainer_arguments(cfg: Any, overrides: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The positional and keyword arguments of ``Trainer(...)`` for a ``segkit.config.Config``.

    Args:
        cfg: the config.
        overrides: Trainer keyword arguments that win over ``cfg.train``.

    Returns:
        ``(model, loss, train_data, val_data)`` and the keyword arguments (``trackers``, ``config``, the
        ``train`` block with ``overrides``).
    """
    from segkit.config import config_to_dict

    # Seed before building anything, so train.seed also fixes the model's initial weights.
    seed_everything(int(overrides.get("seed", cfg.train.seed)))
    train_ds = build_dataset(cfg.data.name, **cfg.data.split_params("train"))
    val_params = cfg.data.split_params("val")
    val_ds = build_dataset(cfg.data.name, **val_params) if val_params is not None else None
    info = dataset_info(train_ds)
    model_kwargs = model_arguments(cfg.model.params, info.num_classes, info.in_channels)
    model = build_model(cfg.model.name, **model_kwargs)
    loss = None if cfg.loss is None else build_loss_for_dataset(cfg.loss.name, info.ignore_index, cfg.loss.params)
    kwargs = {**dataclasses.asdict(cfg.train), **overrides}
    resolved = config_to_dict(cfg)
    resolved["model"]["num_classes"] = model_kwargs["num_classes"]
    if "in_channels" in model_kwargs:
        resolved["model"]["in_channels"] = model_kwargs["in_channels"]
    inner: Any = getattr(train_ds, "dataset", train_ds)  # a torch Subset keeps the segkit dataset as .dataset
    if getattr(inner, "normalization_source", None) == "computed":  # reruns and `segkit evaluate` reuse them
        resolved["data"].update(mean=list(inner.normalization.mean), std=list(inner.normalization.std))
    return (model, loss, train_ds, val_ds), {"trackers": cfg.trackers, "config": resolved, **kwargs}
