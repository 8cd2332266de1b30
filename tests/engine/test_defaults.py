"""Every Trainer default is written once in effect (issue 29 item 2): ``config.TrainConfig`` mirrors the Trainer's
keyword arguments field for field, with the same defaults, so `segkit train` and ``Trainer(...)`` agree."""

import dataclasses
import inspect

from segkit import Trainer
from segkit.config import TrainConfig

# Trainer arguments that are objects or data, not YAML `train` keys.
NOT_CONFIG = {"model", "loss", "train_data", "val_data", "callbacks", "trackers", "config"}


def _field_default(field):
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return field.default


def test_every_train_config_field_is_a_trainer_argument_with_the_same_default():
    params = inspect.signature(Trainer.__init__).parameters
    fields = {f.name: _field_default(f) for f in dataclasses.fields(TrainConfig)}
    arguments = {n: p.default for n, p in params.items() if n != "self" and n not in NOT_CONFIG}
    assert set(fields) == set(arguments), set(fields) ^ set(arguments)
    differing = {n: (arguments[n], fields[n]) for n in fields if arguments[n] != fields[n]}
    assert not differing, f"Trainer default vs TrainConfig default: {differing}"
