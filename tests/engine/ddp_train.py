"""Run by test_distributed.py under torchrun: train TinyNet with 2 CPU processes (gloo)."""

import hashlib
import json
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # this checkout's segkit and tests

from segkit import Trainer  # noqa: E402
from segkit.engine.callbacks import Callback  # noqa: E402
from tests.engine._nets import TinyNet  # noqa: E402
from tests.engine.test_distributed import make_data, trainer_kwargs  # noqa: E402


class RankDependentDraws(Callback):
    """Draw rank-dependent amounts of random numbers (as Mask R-CNN's RoI sampling does), so the ranks'
    RNG streams diverge; the weights do not depend on them."""

    def on_train_batch_end(self, trainer: Trainer, outputs: dict) -> None:
        torch.rand(1 + torch.distributed.get_rank())


if __name__ == "__main__":
    torch.set_num_threads(1)
    torch.manual_seed(0)
    out = Path(sys.argv[1])
    train, val = make_data()
    trainer = Trainer(
        TinyNet(), "ce", train, val, batch_size=4, out_dir=out, callbacks=[RankDependentDraws()], **trainer_kwargs()
    )
    metrics = trainer.fit()
    rank = torch.distributed.get_rank()
    (out / f"rank{rank}.json").write_text(
        json.dumps(
            {
                "world": torch.distributed.get_world_size(),
                "miou": metrics["val/miou"],
                "loss": metrics["train/loss"],
                "rng": hashlib.sha1(torch.get_rng_state().numpy().tobytes()).hexdigest(),  # as at the last save
            }
        )
    )
    torch.distributed.destroy_process_group()
    # Gloo's worker threads can abort the interpreter's finalisation ('terminate called without an active
    # exception', 1 run in 6 here; pytorch/pytorch#179291): the results are written, leave at once.
    sys.stdout.flush(), sys.stderr.flush()
    os._exit(0)
