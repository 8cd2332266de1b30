"""Run the whole benchmark suite (what ``make bench`` does) and rewrite the measured blocks of bench/RESULTS.md.

Usage: python bench/run_all.py [--only trainer metrics ...] [--quick] [--no-write]
Each script runs in a fresh process with the arguments below (chosen so the suite fits in 15 minutes
on the 2-core build machine). Its output replaces the block between ``<!-- run_all:NAME -->`` and
``<!-- /run_all:NAME -->`` in RESULTS.md (a new section is appended when the markers are missing); the
prose around the blocks is left alone, and the header block records machine, versions and load.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "RESULTS.md"

# (name, arguments of the full run, arguments of --quick)
SUITE: tuple[tuple[str, list[str], list[str]], ...] = (
    ("data", ["--rounds", "3"], ["--count", "8", "--rounds", "1"]),
    ("losses", ["--repeats", "3"], ["--shape", "2", "4", "32", "32", "--repeats", "1"]),
    ("metrics", [], ["--quick"]),
    ("models", ["--runs", "3"], ["--size", "64", "--runs", "1", "--encoder", "resnet18"]),
    # The compiled rows of bf16 only (each compiled mode costs 30-100 s of compile here; `--modes all` for all 8).
    (
        "trainer",
        ["--size", "256", "--steps", "4", "--rounds", "3", "--modes", "eager", "bf16-compiled", "bf16-cl-compiled"],
        ["--size", "32", "--steps", "3", "--rounds", "1", "--modes", "eager"],
    ),
    ("maskrcnn", ["--size", "96", "--steps", "5", "--rounds", "3"], ["--quick"]),
    ("ddp", ["--size", "64", "--steps", "5", "--rounds", "2"], ["--quick"]),
    ("accuracy", ["--budget", "45", "--train", "128"], ["--quick"]),
)


def machine() -> str:
    """One line: CPU model, cores, Python and the versions that matter, the GPU if any."""
    cpu = platform.processor() or platform.machine()
    try:
        names = [ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    versions = []
    for pkg in (
        "torch",
        "torchvision",
        "segmentation-models-pytorch",
        "torchmetrics",
        "albumentations",
        "opencv-python-headless",
    ):
        try:
            versions.append(f"{pkg} {metadata.version(pkg)}")
        except metadata.PackageNotFoundError:
            pass
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{cpu}, {os.cpu_count()} cores, {gpu}; Python {platform.python_version()}; " + ", ".join(versions)


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def replace_block(text: str, name: str, body: str) -> str:
    """Put ``body`` between the ``name`` markers of ``text`` (appending a section when absent)."""
    start, end = f"<!-- run_all:{name} -->", f"<!-- /run_all:{name} -->"
    block = f"{start}\n{body.rstrip()}\n{end}"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if pattern.search(text):
        return pattern.sub(lambda _: block, text)
    return text.rstrip() + f"\n\n## {name}\n\n{block}\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", help="run only these scripts")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test of the suite)")
    parser.add_argument("--no-write", action="store_true", help="print only, leave RESULTS.md alone")
    parser.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of each script (ddp sets its own)")
    args = parser.parse_args()
    # One thread by default: on a loaded machine OpenMP threads spin at barriers while their partner is
    # descheduled, which made 2-thread steps up to 5x slower than 1-thread ones here (see RESULTS.md, ddp).
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_ALBUMENTATIONS_UPDATE": "1", "MPLBACKEND": "Agg",
           "OMP_NUM_THREADS": str(args.threads)}  # fmt: skip
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmarks\n"
    begin, loads = time.perf_counter(), []
    for name, full, quick in SUITE:
        if args.only and name not in args.only:
            continue
        cmd = [sys.executable, f"bench/{name}.py", *(quick if args.quick else full)]
        before, t0 = load(), time.perf_counter()
        print(f"== {' '.join(cmd[1:])}  (load average {before})", flush=True)
        res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
        out = "\n".join(ln for ln in res.stdout.splitlines() if not ln.startswith("epoch "))
        print(out, flush=True)
        if res.returncode != 0:
            sys.exit(f"bench/{name}.py failed:\n{res.stderr[-3000:]}")
        took, after = time.perf_counter() - t0, load()
        loads.append(after)
        print(f"   took {took:.0f} s, load average after: {after}", flush=True)
        body = (
            f"Command: `python {' '.join(cmd[1:])}` (via `make bench`), {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; took {took:.0f} s; "
            f"load average (1, 5, 15 min) before {before}, after {after}.\n\n```\n{out.strip()}\n```"
        )
        text = replace_block(text, name, body)
    total = time.perf_counter() - begin
    header = (
        f"Last `make bench` ({'--quick, ' if args.quick else ''}`python bench/run_all.py`): "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {total / 60:.1f} min in all, "
        f"OMP_NUM_THREADS={args.threads}.\n"
        f"Machine: {machine()}.\nLoad average after each script: {'; '.join(loads)}."
    )
    if not args.only:  # a partial rerun keeps the header of the last full run
        text = replace_block(text, "header", header)
    print(f"== suite took {total / 60:.1f} min", flush=True)
    if not args.no_write:
        RESULTS.write_text(text)


if __name__ == "__main__":
    main()
