"""Training engine."""

from segkit.engine.trainer import Trainer

__all__ = ["Trainer"]
