"""What ``import segkit`` costs against ``import torch``: each import in its own fresh interpreter, median of N.

Usage::

    python bench/import_time.py                          # 7 rounds: torch, then segkit from this checkout
    python bench/import_time.py --old /tmp/old_checkout  # also segkit from another checkout (before/after)
    python bench/import_time.py --old /tmp/old_checkout --write-results

Every round starts one interpreter per row, in turn, so the rows share whatever load the machine has. Each child
times its own import (the interpreter's start-up is left out) in wall time and in its CPU time (user + system);
on a machine shared with other jobs the wall time stretches with the load but the CPU time does not, so the
CPU-time ratio is the one to compare across runs. A child also reports which heavy optional libraries the import
loaded (``tests/test_import_cost.py`` holds that list empty for this checkout). ``--old`` runs a checkout given by
path (``git worktree add /tmp/old <commit>``) through ``PYTHONPATH``; the child prints which ``segkit`` it
imported, so a row cannot silently time the installed one. The issue's goal: ``import segkit`` <= 1.5x
``import torch``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _peer import loads, machine, write_results  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
HEAVY = (
    "albumentations",
    "segmentation_models_pytorch",
    "timm",
    "torchvision",
    "torch._dynamo",
    "pycocotools",
    "matplotlib",
    "scipy",
    "cv2",
)
CHILD = """
import os, sys, time, json
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
t0, c0 = time.perf_counter(), time.process_time()
import {module}
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
segkit = sys.modules.get("segkit")
print(json.dumps({{"wall": wall, "cpu": cpu, "modules": len(sys.modules),
                  "heavy": [m for m in {heavy!r} if m in sys.modules],
                  "file": getattr(segkit, "__file__", None)}}))
"""


def run_child(module: str, pythonpath: Path | None, python: str) -> dict:
    """One fresh interpreter that imports ``module``; its own timing and what it loaded."""
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    with tempfile.TemporaryDirectory() as cwd:  # not the repo: `-c` puts the working folder first on sys.path
        out = subprocess.run(
            [python, "-c", CHILD.format(module=module, heavy=HEAVY)],
            capture_output=True,
            text=True,
            check=True,
            cwd=cwd,
            env=env,
        ).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="rounds (each row once per round)")
    parser.add_argument("--old", type=Path, help="another segkit checkout to time too (the 'before' row)")
    parser.add_argument("--python", default=sys.executable, help="interpreter to run (default: this one)")
    parser.add_argument("--write-results", action="store_true", help="write the block into bench/RESULTS.md")
    args = parser.parse_args(argv)

    rows: list[tuple[str, str, Path | None]] = [("import torch", "torch", None)]
    if args.old is not None:
        rows.append((f"import segkit (before: {args.old})", "segkit", args.old.resolve()))
    rows.append(("import segkit (this checkout)", "segkit", REPO))
    load_before = os.getloadavg()
    samples: dict[str, list[dict]] = {label: [] for label, _, _ in rows}
    for _ in range(args.runs):
        for label, module, path in rows:
            samples[label].append(run_child(module, path, args.python))
    load_after = os.getloadavg()

    for label, _module, path in rows:  # the row timed the checkout it names
        files = {s["file"] for s in samples[label]}
        if path is not None and not all(f and Path(f).resolve().is_relative_to(path) for f in files):
            raise SystemExit(f"{label}: imported {files}, not the checkout {path} (is it a segkit source tree?)")
    torch_wall = statistics.median(s["wall"] for s in samples["import torch"])
    torch_cpu = statistics.median(s["cpu"] for s in samples["import torch"])
    lines = [
        "| import | wall s (median) | CPU s (median) | x torch (wall) | x torch (CPU) | modules | heavy libraries loaded |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    result: dict = {"rows": {}}
    for label, _, _ in rows:
        wall = statistics.median(s["wall"] for s in samples[label])
        cpu = statistics.median(s["cpu"] for s in samples[label])
        heavy = ", ".join(samples[label][-1]["heavy"]) or "none"
        result["rows"][label] = {"wall": wall, "cpu": cpu, "x_wall": wall / torch_wall, "x_cpu": cpu / torch_cpu}
        lines.append(
            f"| {label} | {wall:.2f} | {cpu:.2f} | {wall / torch_wall:.2f} | {cpu / torch_cpu:.2f} | "
            f"{samples[label][-1]['modules']} | {heavy} |"
        )
    header = (
        f"Command: `python bench/import_time.py --runs {args.runs}"
        + (f" --old {args.old}" if args.old else "")
        + f"`. Machine: {machine()}. Load average (1/5/15 min, `os.getloadavg`) {loads(load_before)} before, "
        f"{loads(load_after)} after; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. Each cell is the median "
        f"of {args.runs} fresh interpreters, the rows taking turns; the child times its own import (interpreter "
        "start-up excluded). Under load the wall times stretch; the CPU-time ratio is the one that carries over."
    )
    text = header + "\n\n" + "\n".join(lines)
    print(text)
    if args.write_results:
        write_results(text, "import_time", "Import time: `import segkit` against `import torch` (issue 29 item 8)")
    return result


if __name__ == "__main__":
    main()
