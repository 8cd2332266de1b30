"""Run by test_distributed_resume.py under torchrun (2 CPU processes, gloo): an uninterrupted run, then the same
run cut in the middle of an epoch and resumed from its mid-epoch ``last.pt``, in one process group."""

import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # this checkout's segkit and tests

from segkit import Trainer  # noqa: E402
from segkit.engine.callbacks import Callback  # noqa: E402
from tests.engine._nets import TinyNet  # noqa: E402
from tests.engine.test_distributed import make_data  # noqa: E402

CUT_AT = 6  # optimizer step: epoch 2, after its 2nd of 4 batches; last.pt is written at every step


class Cut(Callback):
    """Simulates a kill of every process right after the checkpoint of step ``CUT_AT``."""

    def on_train_batch_end(self, trainer: Trainer, outputs: dict) -> None:
        if trainer.global_step == CUT_AT:
            raise KeyboardInterrupt


def trainer(out: Path, callbacks=()) -> Trainer:
    torch.manual_seed(0)
    train, val = make_data()  # 16 training images: 8 per rank, 4 batches of 2 per epoch
    return Trainer(
        TinyNet(dropout=0.2), "ce", train, val, epochs=2, batch_size=2, lr=0.01, seed=5, log_every=1,
        checkpoint_every=1, device="cpu", out_dir=out, callbacks=callbacks,
    )  # fmt: skip


if __name__ == "__main__":
    torch.set_num_threads(1)
    out = Path(sys.argv[1])
    trainer(out / "full").fit()
    try:
        trainer(out / "cut", [Cut()]).fit()
    except KeyboardInterrupt:
        pass
    trainer(out / "cut").fit(resume="last")
    torch.distributed.destroy_process_group()
    # Gloo's worker threads can abort the interpreter's finalisation ('terminate called without an active
    # exception', 1 run in 6 here; pytorch/pytorch#179291): the results are written, leave at once.
    sys.stdout.flush(), sys.stderr.flush()
    os._exit(0)
