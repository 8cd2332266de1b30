"""Run by test_ddp_faults.py under torchrun (2 gloo processes): rank 1 gets one NaN loss, then dies at step 3."""

import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # this checkout's segkit and tests

from segkit import Trainer  # noqa: E402
from segkit.datasets import build_dataset  # noqa: E402
from segkit.engine.callbacks import Callback  # noqa: E402
from tests.engine._nets import TinyNet  # noqa: E402

NAN_AT, DIE_AT = 1, 3  # global steps


class NaNOnRank1(Trainer):
    """Rank 1 alone sees a non-finite loss once: both ranks must skip that batch together."""

    nan_done = False

    def compute_loss(self, outputs, batch):
        out = super().compute_loss(outputs, batch)
        if self.dist.rank == 1 and self.global_step == NAN_AT and not self.nan_done:
            self.nan_done = True
            out["loss"] = out["loss"] * float("nan")
        return out


class Record(Callback):
    def on_train_batch_end(self, trainer, outputs):
        with open(trainer.out_dir / f"rank{trainer.dist.rank}.log", "a") as fh:
            fh.write(f"{trainer.global_step} {trainer.nonfinite_steps}\n")
        if trainer.dist.rank == 1 and trainer.global_step == DIE_AT:
            os._exit(3)  # a crash without cleanup: no exception, no destroy_process_group


if __name__ == "__main__":
    torch.set_num_threads(1)
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    train = build_dataset("shapes", split="train", num_images=32, image_size=24)
    trainer = NaNOnRank1(TinyNet(), "ce", train, None, epochs=2, batch_size=2, checkpoint_every=1, log_every=1,
                         device="cpu", out_dir=out, callbacks=[Record()])  # fmt: skip
    trainer.fit(resume="auto")
