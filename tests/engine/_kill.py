"""A callback that simulates a kill in the middle of training, shared by the resume tests."""

from segkit.engine.callbacks import Callback


class KillAfterStep(Callback):
    """Raises ``KeyboardInterrupt`` after optimizer step ``at``: no end-of-epoch checkpoint, no cleanup."""

    def __init__(self, at):
        self.at = at

    def on_train_batch_end(self, trainer, outputs):
        if trainer.global_step == self.at:
            raise KeyboardInterrupt
