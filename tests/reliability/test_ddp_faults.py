"""torchrun: a worker that dies ends the whole job with a message naming it; a NaN on one rank is skipped by all."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_dead_worker_ends_the_job_with_a_clear_message(tmp_path, watchdog):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "NO_ALBUMENTATIONS_UPDATE": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "--max-restarts", "0", str(ROOT / "tests/reliability/ddp_worker_dies.py"), str(tmp_path / "run")]  # fmt: skip
    # Bounded: without the agent tearing the group down, rank 0 would wait in all_reduce for gloo's 30 min.
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=150, cwd=ROOT)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    # torchrun's summary names the script, the dead rank and its exit code.
    assert "ddp_worker_dies.py FAILED" in output, output[-3000:]
    assert re.search(r"Root Cause.*?rank\s+: 1 .*?exitcode\s+: 3 ", output, re.S), output[-3000:]

    logs = [[tuple(map(int, line.split())) for line in (tmp_path / "run" / f"rank{r}.log").read_text().splitlines()]
            for r in (0, 1)]  # fmt: skip
    # The NaN seen by rank 1 alone was skipped by both ranks together (no hang, same step counts).
    assert logs[1] == [(1, 0), (2, 1), (3, 1)] and logs[0][:3] == logs[1]
    # Rank 0 stopped at most one step later, and the checkpoint it left is whole and resumable.
    assert len(logs[0]) <= 4
    from segkit.checkpoint import load_checkpoint

    state = load_checkpoint(tmp_path / "run" / "last.pt")
    assert 2 <= state["global_step"] <= 4 and state["nonfinite"][0] == 1
    steps = [json.loads(line)["step"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps))
