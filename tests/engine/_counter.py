"""A callback with state, shared by the tests of callback states in checkpoints."""

from segkit.engine.callbacks import Callback


class Counter(Callback):
    """Counts the epochs it saw; its state is that count."""

    def __init__(self):
        self.epochs_seen = 0

    def on_epoch_end(self, trainer, metrics):
        self.epochs_seen += 1

    def state_dict(self):
        return {"epochs_seen": self.epochs_seen}

    def load_state_dict(self, state):
        self.epochs_seen = state["epochs_seen"]
