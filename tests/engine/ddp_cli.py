"""Run under torchrun: ``segkit train`` through ``segkit.cli.main``, then record what the process is left with."""

import json
import sys
from pathlib import Path

import torch.distributed as dist

from segkit.cli import main

if __name__ == "__main__":
    config, out = sys.argv[1], Path(sys.argv[2])
    status = main(["train", "--config", config])
    rank = __import__("os").environ["RANK"]
    (out / f"after_rank{rank}.json").write_text(json.dumps({"status": status, "initialized": dist.is_initialized()}))
