"""What the Trainer builds from its data: the metadata it trains with, the loss with the data's ``ignore_index``, and
the class count of an smp aux head."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from torch import nn

from segkit.datasets.wrappers import DatasetInfo, dataset_info
from segkit.losses import LOSSES, CombinedLoss, build_loss, loss_weights
from segkit.models.smp import aux_head

__all__ = ["aux_head_classes", "build_loss_for_dataset", "check_loss_ignore_index", "data_info"]


def data_info(train: Any, val: Any) -> DatasetInfo:
    """The metadata the Trainer trains with: the train dataset's (else the validation one's), read
    through ``Subset`` / ``ConcatDataset`` wrappers (``dataset_info``).

    Raises:
        ValueError: train and validation data disagree on ``ignore_index`` or ``num_classes`` (the model is
            built for the training classes: a validation label beyond them would be dropped by the metrics).
    """
    info = dataset_info(train if train is not None else val)
    if train is not None and val is not None:
        val_info = dataset_info(val)
        if val_info.ignore_index != info.ignore_index:
            raise ValueError(
                f"val_data: ignore_index={val_info.ignore_index} but train_data's is {info.ignore_index}; give both "
                "datasets the same ignore_index"
            )
        ours, theirs = info.num_classes, val_info.num_classes
        if ours is not None and theirs is not None and ours != theirs:
            effect = (
                f"the validation labels {list(range(ours, theirs))[:8]} would be dropped from the metrics unseen"
                if theirs > ours
                else f"validation would score classes {list(range(theirs, ours))[:8]} that its data cannot have"
            )
            raise ValueError(
                f"val_data: num_classes={theirs} but train_data's is {ours}: the model is built for {ours} "
                f"classes, so {effect}. Remedy: pass num_classes={max(ours, theirs)} to both datasets (a folder "
                "dataset built with split= infers it over every split of the folder)"
            )
    return info


def aux_head_classes(model: nn.Module, num_classes: int | None) -> int | None:
    """The class count of an smp ``aux_params`` head the Trainer gives a class-presence loss, or None.

    smp's head predicts, per image, which of the segmentation classes are present; its target is derived
    from the mask, so it must have one output per class of the data, and output logits (the loss applies
    the sigmoid itself).

    Args:
        model: the model (unwrapped or not).
        num_classes: the data's class count, or None when unknown (then not compared).

    Returns:
        The head's ``classes``, or None when the model has no smp classification head.

    Raises:
        ValueError: the head's classes differ from ``num_classes``, or it applies an activation.
    """
    head = aux_head(model)
    if head is None:
        return None
    linears = [m for m in head.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError("aux_params: the smp classification head has no Linear layer; cannot tell its classes")
    classes = linears[-1].out_features
    if num_classes is not None and classes != num_classes:
        raise ValueError(
            f"aux_params: classes={classes} but the data has num_classes={num_classes}; the aux head is trained "
            f"to predict which of the data's classes each image holds (from its mask), so build the model with "
            f"aux_params={{'classes': {num_classes}, ...}}"
        )
    activation = getattr(head[-1], "activation", None) if isinstance(head, nn.Sequential) and len(head) else None
    if activation is not None and not isinstance(activation, nn.Identity):
        raise ValueError(
            f"aux_params: activation={type(activation).__name__}, but the aux head is trained with "
            f"binary_cross_entropy_with_logits, which needs logits; build it with aux_params activation=None "
            f"(apply torch.sigmoid to the class logits at inference)"
        )
    return classes


def build_loss_for_dataset(
    name: str | Mapping[str, float] | nn.Module, ignore_index: int, params: Mapping[str, Any] | None = None
) -> nn.Module:
    """``build_loss(name, **params)`` with the dataset's ``ignore_index`` given to every term that takes
    one and was not given one explicitly; then ``check_loss_ignore_index``.

    Args:
        name: a loss name, names joined by ``+``, a ``{name: weight}`` mapping (see ``build_loss``), or a
            module (only checked).
        ignore_index: the dataset's ``ignore_index``.
        params: the loss's keyword arguments (per-term mappings for a combination).

    Returns:
        The loss module.

    Raises:
        ValueError: the loss (or one of its terms) uses another ``ignore_index`` than the dataset.
    """
    kwargs = dict(params or {})
    if isinstance(name, nn.Module):
        loss = build_loss(name, **kwargs)
    elif loss_weights(name) is None:
        name = str(name)
        if "ignore_index" not in kwargs and _takes_ignore_index(name.strip()):
            kwargs["ignore_index"] = ignore_index
        loss = build_loss(name, **kwargs)
    else:
        loss = build_loss(name, **_per_term(name, kwargs, ignore_index))
    check_loss_ignore_index(loss, ignore_index)
    return loss


def _per_term(name: str | Mapping[str, float], kwargs: dict[str, Any], ignore_index: int) -> dict[str, Any]:
    for term in loss_weights(name) or {}:
        own = dict(kwargs.get(term) or {})
        if "ignore_index" not in own and _takes_ignore_index(term):
            own["ignore_index"] = ignore_index
        if own:
            kwargs[term] = own
    return kwargs


def check_loss_ignore_index(loss: Any, ignore_index: int) -> None:
    """Raise when a loss (or a term of a ``CombinedLoss``) ignores another label than the dataset.

    Raises:
        ValueError: names the loss term, both values and the remedy.
    """
    terms = list(loss.terms.items()) if isinstance(loss, CombinedLoss) else [(type(loss).__name__, loss)]
    for name, term in terms:
        if isinstance(term, CombinedLoss):
            check_loss_ignore_index(term, ignore_index)
            continue
        value = getattr(term, "ignore_index", None)
        if isinstance(value, int) and not isinstance(value, bool) and value != ignore_index:
            raise ValueError(
                f"loss: {name} has ignore_index={value} but the dataset's ignore_index is {ignore_index}, so "
                f"its ignored pixels would be read as a class (or rejected); build the loss with "
                f"ignore_index={ignore_index}, or give the loss by name and the Trainer passes the dataset's"
            )


def _takes_ignore_index(name: str) -> bool:
    if name not in LOSSES:
        return False  # build_loss reports the unknown name
    try:
        return "ignore_index" in inspect.signature(LOSSES.get(name)).parameters
    except (TypeError, ValueError):
        return False
