"""Run by test_distributed_instance.py under torchrun: a tiny Mask R-CNN trains and validates on 2 CPU processes."""

import json
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # this checkout's segkit and tests

from tests.engine.test_distributed_instance import OracleTrainer, make_data  # noqa: E402
from tests.engine.test_instance import tiny_mask_rcnn  # noqa: E402

if __name__ == "__main__":
    torch.set_num_threads(1)
    torch.manual_seed(0)
    out = Path(sys.argv[1])
    train, val = make_data()
    trainer = OracleTrainer(
        tiny_mask_rcnn(train.num_classes), None, train, val, task="instance", epochs=1, batch_size=2, lr=1e-3,
        log_every=1, out_dir=out, device="cpu",
    )  # fmt: skip
    metrics = trainer.fit()
    rank = torch.distributed.get_rank()
    (out / f"rank{rank}.json").write_text(
        json.dumps({"world": torch.distributed.get_world_size(), **{k: v for k, v in metrics.items() if "_ap" in k}})
    )
    torch.distributed.destroy_process_group()
    # Gloo's worker threads can abort the interpreter's finalisation ('terminate called without an active
    # exception', 1 run in 6 here; pytorch/pytorch#179291): the results are written, leave at once.
    sys.stdout.flush(), sys.stderr.flush()
    os._exit(0)
