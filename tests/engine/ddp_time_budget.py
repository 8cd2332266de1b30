"""Run by test_time_budget.py under torchrun (2 CPU processes, gloo): a max_minutes run whose ranks see different
(fake) times; each rank writes the epochs it planned and ran."""

import json
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # this checkout's segkit and tests

from segkit import Trainer  # noqa: E402
from segkit.engine import time_budget  # noqa: E402
from segkit.engine.callbacks import Callback  # noqa: E402
from tests.engine._nets import TinyNet  # noqa: E402
from tests.engine.test_distributed import make_data  # noqa: E402


class RankClock(Callback):
    """Fake time: a training batch takes 2 s on rank 0; on rank 1 4 s in the first epoch and 5 s after it (its
    epochs slow down, rank 0's do not); a validation 1 s."""

    def __init__(self, rank: int) -> None:
        self.now, self.rank = 0.0, rank

    def __call__(self) -> float:
        return self.now

    def on_train_batch_end(self, trainer: Trainer, outputs: dict) -> None:
        self.now += 2.0 if self.rank == 0 else 4.0 if trainer.epoch == 0 else 5.0

    def on_validation_end(self, trainer: Trainer, metrics: dict) -> None:
        self.now += 1.0


if __name__ == "__main__":
    torch.set_num_threads(1)
    torch.manual_seed(0)
    out = Path(sys.argv[1])
    rank = int(os.environ["RANK"])
    clock = RankClock(rank)
    time_budget.clock = clock  # every reading of the budget goes through this module function
    train, val = make_data()  # 16 training images: 8 per rank, 4 batches of 2 per epoch
    trainer = Trainer(
        TinyNet(), "ce", train, val, epochs=2, batch_size=2, lr=0.01, seed=5, log_every=1, device="cpu",
        max_minutes=2.0, out_dir=out, callbacks=[clock],
    )  # fmt: skip
    trainer.fit()
    done = {"planned": trainer.time_budget.plan["epochs"], "epochs": trainer.epoch, "steps": trainer.global_step}
    (out / f"rank{rank}.json").write_text(json.dumps(done))
    torch.distributed.destroy_process_group()
    # Gloo's worker threads can abort the interpreter's finalisation (pytorch/pytorch#179291): leave at once.
    sys.stdout.flush(), sys.stderr.flush()
    os._exit(0)
