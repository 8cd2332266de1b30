"""Run configuration: plain dataclasses, loaded from flat YAML blocks, with `--set a.b=value` overrides."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import math
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import yaml

__all__ = [
    "AMP_CHOICES",
    "COMPILE_CHOICES",
    "ComponentConfig",
    "Config",
    "ConfigError",
    "DataConfig",
    "TrainConfig",
    "absolute_paths",
    "apply_overrides",
    "config_from_dict",
    "config_to_dict",
    "load_config",
    "save_config",
]


class ConfigError(ValueError):
    """A configuration file or override is malformed; the message names the key and the reason."""


@dataclass
class ComponentConfig:
    """A registry entry and its keyword arguments: YAML ``{name: unet, encoder: resnet18}``.

    Attributes:
        name: the registered name.
        params: keyword arguments passed to the builder, exactly as in a Python call.
    """

    name: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class DataConfig:
    """Dataset block: ``{name: shapes, <shared params>, train: {...}, val: {...}}``.

    Attributes:
        name: registered dataset name.
        params: keyword arguments shared by both splits.
        train: keyword arguments for the training split only (merged over ``params``).
        val: keyword arguments for the validation split, or None for no validation.
    """

    name: str
    params: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=lambda: {"split": "train"})
    val: dict[str, Any] | None = field(default_factory=lambda: {"split": "val"})

    def split_params(self, which: str) -> dict[str, Any] | None:
        """Return the merged keyword arguments of split ``which`` ("train" or "val"), or None."""
        extra = self.train if which == "train" else self.val
        if extra is None:
            return None
        return {**self.params, **extra}


# The values train.amp and train.compile take (the Trainer's arguments of the same names use these too).
AMP_CHOICES: tuple[str | None, ...] = (None, "auto", "bf16", "fp16")
COMPILE_CHOICES: tuple[bool | str, ...] = (False, True, "auto")


@dataclass
class TrainConfig:
    """Training options; each field is the ``Trainer`` keyword argument of the same name."""

    task: str | None = None  # "semantic", "instance", or null: from the model (Mask R-CNN -> instance)
    epochs: int = 10
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 1e-4
    optimizer: str = "adamw"
    scheduler: str | None = "poly"
    warmup_iters: int = 0
    amp: str | None = None  # None, "auto", "bf16" or "fp16"
    compile: bool | str = False  # False, True or "auto" (CUDA only)
    accumulate: int = 1
    grad_clip: float | None = None
    aux_weight: float = 0.4
    ema: float | None = None
    ema_warmup: float = 2000.0
    freeze: str | list[str] | None = None
    unfreeze_at: int | None = None
    lr_mult: dict[str, float] | None = None
    norm_weight_decay: float | None = 0.0
    channels_last: bool = False
    out_dir: str = "runs/exp"
    seed: int = 0
    device: str = "auto"
    workers: int = 0
    monitor: str | None = None
    max_nonfinite: int = 5
    log_every: int = 10
    keep_last: int = 0
    early_stop_patience: int | None = None
    checkpoint_every: int | None = None
    sync_bn: bool = False
    max_minutes: float | None = None  # wall-clock budget: epochs planned from the first epoch's time


@dataclass
class Config:
    """A whole run: model, loss, data, training options and trackers."""

    model: ComponentConfig
    data: DataConfig
    loss: ComponentConfig | None = None
    train: TrainConfig = field(default_factory=TrainConfig)
    trackers: list[Any] = field(default_factory=list)


_TOP_KEYS = {f.name for f in dataclasses.fields(Config)}


def _check_type(value: Any, annotation: Any, key: str) -> Any:
    """Return ``value`` (ints widened to float) if it matches ``annotation``, else raise ConfigError."""
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        errors = []
        for option in typing.get_args(annotation):
            try:
                return _check_type(value, option, key)
            except ConfigError as exc:
                errors.append(str(exc))
        names = " or ".join(_type_name(a) for a in typing.get_args(annotation))
        raise ConfigError(f"{key}: expected {names}, got {type(value).__name__} {value!r}")
    if annotation is type(None):
        if value is None:
            return None
    elif annotation is Any:
        return value
    elif annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif annotation in (str, bool):
        if isinstance(value, annotation):
            return value
    elif origin in (list, dict):
        if isinstance(value, origin):
            return value
    else:
        return value
    raise ConfigError(f"{key}: expected {_type_name(annotation)}, got {type(value).__name__} {value!r}")


def _type_name(annotation: Any) -> str:
    return "null" if annotation is type(None) else getattr(annotation, "__name__", str(annotation))


def _component(block: Any, key: str) -> ComponentConfig:
    if isinstance(block, str):
        return ComponentConfig(name=block)
    if not isinstance(block, dict) or "name" not in block:
        raise ConfigError(f"{key}: expected a mapping with a 'name' key (e.g. {{name: unet}}), got {block!r}")
    params = dict(block)
    name = params.pop("name")
    if not isinstance(name, str):
        raise ConfigError(f"{key}.name: expected str, got {type(name).__name__} {name!r}")
    return ComponentConfig(name=name, params=params)


def _data(block: Any) -> DataConfig:
    comp = _component(block, "data")
    params = dict(comp.params)
    train = params.pop("train", {"split": "train"})
    val = params.pop("val", {"split": "val"})
    for split, extra in (("train", train), ("val", val)):
        if extra is not None and not isinstance(extra, dict):
            raise ConfigError(f"data.{split}: expected a mapping or null, got {extra!r}")
    return DataConfig(name=comp.name, params=params, train=train, val=val)


def _train(block: Any) -> TrainConfig:
    if block is None:
        return TrainConfig()
    if not isinstance(block, dict):
        raise ConfigError(f"train: expected a mapping, got {block!r}")
    hints = typing.get_type_hints(TrainConfig)
    known = set(hints)
    kwargs = {}
    for key, value in block.items():
        if key not in known:
            raise ConfigError(_unknown_key(f"train.{key}", key, known))
        kwargs[key] = _check_type(value, hints[key], f"train.{key}")
    for key, choices in (("amp", AMP_CHOICES), ("compile", COMPILE_CHOICES)):  # fail at load, not at fit
        if key in kwargs and kwargs[key] not in choices:
            shown = ", ".join("null" if c is None else str(c).lower() if isinstance(c, bool) else c for c in choices)
            raise ConfigError(f"train.{key}: expected one of {shown}, got {kwargs[key]!r}")
    if kwargs.get("max_minutes") is not None and not (0 < kwargs["max_minutes"] < math.inf):
        raise ConfigError(f"train.max_minutes: expected a number of minutes > 0 or null, got {kwargs['max_minutes']!r}")
    return TrainConfig(**kwargs)


def _unknown_key(full: str, key: str, known: set[str]) -> str:
    import difflib

    close = difflib.get_close_matches(key, sorted(known), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"{full}: unknown key{hint}; known keys: {', '.join(sorted(known))}"


def config_from_dict(raw: dict[str, Any], validate: bool = True) -> Config:
    """Build a ``Config`` from a parsed YAML mapping.

    Args:
        raw: mapping with the blocks ``model``, ``data`` and optionally ``loss``, ``train``, ``trackers``.
        validate: also check that every name is registered and every component key is a
            keyword argument of its builder.

    Returns:
        The ``Config``.

    Raises:
        ConfigError: an unknown block or key, a wrong type, an unknown registry name.
    """
    if not isinstance(raw, dict):
        raise ConfigError(f"a config must be a mapping of blocks, got {type(raw).__name__}")
    for key in raw:
        if key not in _TOP_KEYS:
            raise ConfigError(_unknown_key(str(key), str(key), _TOP_KEYS))
    for required in ("model", "data"):
        if required not in raw:
            raise ConfigError(f"{required}: missing block (every config needs model and data)")
    trackers = raw.get("trackers") or []
    if not isinstance(trackers, list):
        raise ConfigError(f"trackers: expected a list of names or mappings, got {trackers!r}")
    cfg = Config(
        model=_component(raw["model"], "model"),
        data=_data(raw["data"]),
        loss=None if raw.get("loss") is None else _component(raw["loss"], "loss"),
        train=_train(raw.get("train")),
        trackers=list(trackers),
    )
    if validate:
        validate_config(cfg)
    return cfg


def validate_config(cfg: Config) -> None:
    """Check registry names and builder keyword arguments of every component.

    Raises:
        ConfigError: naming the block and key at fault.
    """
    from segkit.datasets import DATASETS
    from segkit.losses import LOSSES, loss_weights
    from segkit.models import MODELS

    _check_component(MODELS, "model", cfg.model.name, cfg.model.params)
    if cfg.loss is not None and loss_weights(cfg.loss.name) is None:
        _check_component(LOSSES, "loss", cfg.loss.name, cfg.loss.params)
    for split in ("train", "val"):
        params = cfg.data.split_params(split)
        if params is not None:
            _check_component(DATASETS, f"data ({split} split)", cfg.data.name, params)


def _check_component(registry: Any, block: str, name: str, params: dict[str, Any]) -> None:
    try:
        builder = registry.get(name)
    except KeyError as exc:
        raise ConfigError(f"{block}.name: {exc}") from None
    try:
        sig = inspect.signature(builder)
    except (TypeError, ValueError):
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values()):
        return
    accepted = {n for n, p in sig.parameters.items() if p.kind is not inspect.Parameter.VAR_POSITIONAL}
    for key in params:
        if key not in accepted:
            raise ConfigError(_unknown_key(f"{block}.{key}", key, accepted) + f" (of {name!r})")


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of ``raw`` with ``"a.b.c=value"`` overrides applied (values parsed as YAML).

    Raises:
        ConfigError: an override without ``=``, with a value that is not plain YAML, or one that
            descends into a non-mapping.
    """
    out = copy.deepcopy(raw)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected KEY=VALUE, e.g. train.lr=0.01")
        path, text = item.split("=", 1)
        try:
            value = yaml.safe_load(text) if text != "" else ""
        except yaml.YAMLError as exc:
            raise ConfigError(
                f"override {item!r}: not valid YAML (only plain YAML is accepted, no object tags): "
                + str(exc).splitlines()[0]
            ) from None
        node = out
        keys = path.strip().split(".")
        for depth, key in enumerate(keys[:-1]):
            child = node.get(key)
            if child is None:
                child = node[key] = {}
            if isinstance(child, str) and depth == 0:
                child = node[key] = {"name": child}
            if not isinstance(child, dict):
                raise ConfigError(f"override {item!r}: {'.'.join(keys[: depth + 1])} is not a mapping")
            node = child
        node[keys[-1]] = value
    return out


def load_config(path: str | Path, overrides: list[str] | None = None, validate: bool = True) -> Config:
    """Load a YAML config file (safe loader only), apply overrides and validate it.

    Args:
        path: the YAML file.
        overrides: ``["train.lr=0.01", ...]``.
        validate: check registry names and builder arguments (see ``validate_config``).

    Returns:
        The ``Config``.

    Raises:
        FileNotFoundError: no such file.
        ConfigError: malformed YAML, unknown keys, wrong types; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML (only plain YAML is accepted, no object tags): {exc}") from None
    try:
        return config_from_dict(apply_overrides(raw or {}, overrides or []), validate=validate)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def config_to_dict(cfg: Config) -> dict[str, Any]:
    """Return the flat YAML form of ``cfg`` (the inverse of ``config_from_dict``)."""
    data: dict[str, Any] = {"name": cfg.data.name, **cfg.data.params, "train": cfg.data.train, "val": cfg.data.val}
    out: dict[str, Any] = {
        "model": {"name": cfg.model.name, **cfg.model.params},
        "loss": None if cfg.loss is None else {"name": cfg.loss.name, **cfg.loss.params},
        "data": data,
        "train": dataclasses.asdict(cfg.train),
        "trackers": list(cfg.trackers),
    }
    return out


# Path-valued keys read against the working directory: folders (made absolute whatever they hold: an output
# folder may not exist yet) and files (made absolute when they exist: "imagenet" is a name, not a file).
_FOLDER_KEYS = ("root", "sbd_root", "out_dir", "run_dir", "log_dir")
_FILE_KEYS = ("ann_file", "weights", "encoder_weights", "weights_backbone")


def absolute_paths(raw: dict[str, Any], cwd: str | Path | None = None) -> dict[str, Any]:
    """Return a copy of a config mapping whose relative paths are made absolute against ``cwd``.

    The config saved beside checkpoints goes through this, so ``segkit train --config RUN/config.yaml`` (and
    ``segkit evaluate``, ``segkit report``) run from any working directory. Converted: the data block's and
    each split's ``root``, ``sbd_root``, ``ann_file`` and a split list ``split: lists/train.txt``; ``image_dir``
    / ``mask_dir`` only when they name a folder of the working directory and not one under ``root`` (the
    folder dataset reads them relative to ``root``, COCO's ``image_dir`` against the working directory);
    ``model.weights`` / ``encoder_weights`` / ``weights_backbone`` when they name a file; ``train.out_dir``;
    trackers' ``run_dir`` / ``log_dir``. Names (``split: train``, ``encoder_weights: imagenet``) stay.

    Args:
        raw: the mapping form of a config (``config_to_dict``).
        cwd: the folder relative paths were written against; None: the current working directory.

    Returns:
        A new mapping; ``raw`` is not changed.
    """
    base = Path.cwd() if cwd is None else Path(cwd)
    out = copy.deepcopy(raw)
    data = out.get("data")
    if isinstance(data, dict):
        root = _absolute_block(data, base, None)
        for split in ("train", "val"):
            if isinstance(data.get(split), dict):
                _absolute_block(data[split], base, root)
    for block in (out.get("model"), out.get("train"), *(out.get("trackers") or [])):
        if isinstance(block, dict):
            _absolute_block(block, base, None)
    return out


def _absolute_block(block: dict[str, Any], base: Path, root: Path | None) -> Path | None:
    """Make the paths of one mapping absolute in place; return its (absolute) ``root``, else ``root``."""

    def relative(key: str) -> Path | None:
        value = block.get(key)
        if not isinstance(value, str) or value == "" or Path(value).is_absolute():
            return None
        return Path(value)

    for key in _FOLDER_KEYS:
        if (path := relative(key)) is not None:
            block[key] = str((base / path).resolve())
    for key in _FILE_KEYS:
        if (path := relative(key)) is not None and (base / path).is_file():
            block[key] = str((base / path).resolve())
    if (path := relative("split")) is not None and path.suffix == ".txt" and (base / path).is_file():
        block["split"] = str((base / path).resolve())
    root = Path(block["root"]) if isinstance(block.get("root"), str) else root
    for key in ("image_dir", "mask_dir"):
        if (path := relative(key)) is not None and (base / path).is_dir() and not _under(root, path):
            block[key] = str((base / path).resolve())
    return root


def _under(root: Path | None, path: Path) -> bool:
    """Whether ``path`` names a folder of ``root`` or of one of its subfolders (a split's)."""
    if root is None or not root.is_dir():
        return False
    return (root / path).is_dir() or any((d / path).is_dir() for d in root.iterdir() if d.is_dir())


def save_config(cfg: Config | dict[str, Any], path: str | Path) -> None:
    """Write the resolved config as YAML to ``path`` (through a temporary file: a kill never leaves half of it).

    Relative paths are written absolute (``absolute_paths``), so the file runs from any working directory.
    """
    raw = absolute_paths(config_to_dict(cfg) if isinstance(cfg, Config) else cfg)
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(yaml.safe_dump(raw, sort_keys=False))
    os.replace(tmp, path)
