"""Weights from files into a freshly built model: whole checkpoints (a new head when the class count differs) and
encoder state dicts (torchvision / timm / smp files copied from an online machine)."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from segkit.checkpoint import CheckpointError, load_checkpoint, mismatch_report, model_weights
from segkit.models._utils import PadToMultiple

_log = logging.getLogger(__name__)

__all__ = ["is_weights_file", "load_encoder_weights", "load_weights"]

# Keys of a classifier that a backbone file carries and an encoder does not have (torchvision, timm).
_CLASSIFIER_PREFIXES = ("fc.", "classifier.", "head.", "last_linear.")
# Prefixes under which a whole-model file stores its encoder (smp, segkit, detection backbones, DDP).
_ENCODER_PREFIXES = ("model.encoder.", "encoder.", "backbone.body.", "backbone.", "module.")


_WEIGHT_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".safetensors")


def is_weights_file(value: object) -> bool:
    """True when an ``encoder_weights`` value names a local file rather than a published set ("imagenet")."""
    if not isinstance(value, (str, os.PathLike)):
        return False
    text = os.fspath(value)
    return text.lower().endswith(_WEIGHT_SUFFIXES) or os.sep in text or Path(text).is_file()


def _read_state(path: Path) -> dict:
    """The state dict of a checkpoint or weights file (safetensors files read with ``safetensors``)."""
    if path.suffix.lower() == ".safetensors":
        if not path.is_file():
            raise CheckpointError(f"checkpoint not found: {path}")
        from safetensors.torch import load_file

        return {"model": load_file(str(path))}
    return load_checkpoint(path)


def _is_class_dim_change(own: torch.Tensor, theirs: torch.Tensor, num_classes: int | None) -> bool:
    """A classifier tensor of another class count: only the leading (output) dim differs, and it is ours."""
    return (
        num_classes is not None
        and own.ndim == theirs.ndim >= 1
        and own.shape[1:] == theirs.shape[1:]
        and own.shape[0] == num_classes != theirs.shape[0]
    )


def load_weights(
    model: nn.Module,
    weights: str | os.PathLike[str],
    num_classes: int | None = None,
    weights_key: str | None = None,
) -> nn.Module:
    """Load a local checkpoint into ``model`` (``weights_only=True``) and return it.

    Every tensor whose name and shape match is loaded. When the checkpoint was trained with another number
    of classes, the classifier head(s) (tensors whose leading dimension is ``num_classes`` in the model and
    something else in the file) keep their fresh initialisation and one line (stderr) names them; a load
    of every tensor says so in one line too. Any other mismatch
    (another architecture, another encoder, missing or unexpected tensors) is an error with the report.

    Accepts a segkit checkpoint (its EMA weights when it holds them, see ``model_weights``) or a plain state
    dict. For a ``PadToMultiple`` model, a state dict saved from the bare network (keys without the
    ``model.`` prefix, e.g. straight from smp) also fits.

    Args:
        model: the freshly built model.
        weights: path to the file.
        num_classes: the model's class count (enables the new-head rule); None loads strictly.
        weights_key: ``"model"`` or ``"ema"`` to choose the weights of a segkit checkpoint; None: the EMA
            weights when present, else the raw ones.

    Returns:
        ``model`` with the weights loaded.

    Raises:
        CheckpointError: unreadable file, or tensors that do not fit (first mismatches listed).
    """
    source = str(weights)
    state = model_weights(load_checkpoint(Path(weights)), weights_key, source=source)
    target = model
    if isinstance(model, PadToMultiple) and state and not any(k.startswith("model.") for k in state):
        target = model.model
    own = target.state_dict()
    heads = [k for k in own if k in state and _is_class_dim_change(own[k], state[k], num_classes)]
    fitting = {k: v for k, v in state.items() if k not in heads}
    rest = {k: v for k, v in own.items() if k not in heads}
    problems = mismatch_report(rest, fitting)
    if problems:
        raise CheckpointError(f"{source} does not fit this model (another architecture or encoder?): {problems}")
    target.load_state_dict({**own, **fitting})
    # One line either way, so a run's log says what it started from (a load is silent nowhere).
    if heads:
        old = int(state[heads[0]].shape[0])
        _log.warning(
            f"weights {source}: {len(fitting)} tensors loaded; new head for {num_classes} classes (the file has "
            f"{old}), not loaded: {', '.join(heads)}"
        )
    else:
        _log.warning(f"weights {source}: all {len(own)} tensors loaded (the head included: same classes)")
    return model


def _encoder_keys(state: Mapping[str, torch.Tensor], own: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The file's tensors renamed to the encoder's keys: the prefix that matches most keys is removed."""
    best: dict[str, torch.Tensor] = dict(state)
    score = sum(k in own for k in state)
    for prefix in _ENCODER_PREFIXES:
        renamed = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        hits = sum(k in own for k in renamed)
        if hits > score:
            best, score = renamed, hits
    return best


def _adapt_first_conv(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """An RGB first-layer kernel ``(O, 3, k, k)`` for ``in_channels`` inputs, as smp adapts pretrained
    encoders: summed for one channel, else the RGB kernels repeated cyclically and scaled by 3 / in_channels."""
    if in_channels == 1:
        return weight.sum(1, keepdim=True)
    index = torch.arange(in_channels) % weight.shape[1]
    return weight[:, index] * (weight.shape[1] / in_channels)


def load_encoder_weights(encoder: nn.Module, weights: str | os.PathLike[str], name: str = "encoder") -> nn.Module:
    """Load an encoder's weights from a local file: a torchvision / timm backbone state dict (e.g. torchvision's
    ``resnet34-b627a593.pth``), an smp model or encoder state dict, or a segkit checkpoint (its encoder part).

    The classifier of a backbone file (``fc.*``, ``classifier.*``, ``head.*``) is dropped; a first convolution
    stored for 3 channels is adapted to the encoder's input channels as smp does. Every other encoder tensor
    must be in the file with its shape.

    Args:
        encoder: the smp encoder (``model.encoder``) built with random weights.
        weights: path to the file.
        name: the encoder's name, for messages.

    Returns:
        ``encoder`` with the weights loaded.

    Raises:
        CheckpointError: unreadable file, or keys that do not fit this encoder (the report lists them).
    """
    source = str(weights)
    state = model_weights(_read_state(Path(weights)), None, source=source)
    own = encoder.state_dict()
    state = _encoder_keys(state, own)
    state = {k: v for k, v in state.items() if k in own or not k.startswith(_CLASSIFIER_PREFIXES)}
    for key, value in own.items():
        theirs = state.get(key)
        if theirs is not None and theirs.ndim == 4 and value.ndim == 4 and theirs.shape[1] != value.shape[1]:
            if theirs.shape[0] == value.shape[0] and theirs.shape[2:] == value.shape[2:]:
                state[key] = _adapt_first_conv(theirs, value.shape[1])
    problems = mismatch_report(own, state)
    if problems:
        raise CheckpointError(
            f"encoder_weights={source} does not fit encoder {name!r} (a file of another network?): {problems}"
        )
    encoder.load_state_dict(state)
    return encoder
