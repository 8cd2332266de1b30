"""Run by test_trainer_nonfinite.py under torchrun: 2 CPU processes (gloo), accumulate=2, and a non-finite
loss on rank 0 only at the last batch of the first window (its backward, DDP's all-reduce, never runs)."""

import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # this checkout's segkit and tests

from segkit import Trainer  # noqa: E402
from tests.engine.test_trainer_nonfinite import NaNOnBatches, accumulate_run_kwargs  # noqa: E402

if __name__ == "__main__":
    torch.set_num_threads(1)
    torch.manual_seed(0)
    out = Path(sys.argv[1])
    rank = int(os.environ["RANK"])
    model = NaNOnBatches({1} if rank == 0 else set())
    trainer = Trainer(model, batch_size=2, out_dir=out, **accumulate_run_kwargs())
    trainer.fit()
    torch.save(trainer.module.state_dict(), out / f"rank{rank}.pt")
    torch.distributed.destroy_process_group()
    # Gloo's worker threads can abort the interpreter's finalisation ('terminate called without an active
    # exception', 1 run in 6 here; pytorch/pytorch#179291): the results are written, leave at once.
    sys.stdout.flush(), sys.stderr.flush()
    os._exit(0)
