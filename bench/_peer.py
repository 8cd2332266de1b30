"""What the peer benches (instance_peer.py, semantic_peer.py) share: the peer's own venv, one-thread training
processes run side by side and timed by their CPU seconds, the machine's description and the RESULTS blocks.

Ultralytics (AGPL-3.0) is installed only into the peer venv (``runs/peer_env``), never into segkit's: the peer venv
sees segkit's ``.venv`` site-packages through a ``.pth`` file, so only ultralytics and its small dependencies are
installed there (no second torch) and ``.venv`` itself is not modified.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# The version of the measurements (YOLO26 *-sem needs 8.4), and onnxslim, which its ONNX export runs.
PEER_SPECS = ("ultralytics==8.4.190", "onnxslim>=0.1.82")
# ``segkit train`` / ``segkit export`` in one thread (the CLI itself leaves torch's thread count alone).
SEGKIT_MAIN = "import sys, torch; torch.set_num_threads(1); from segkit.cli import main; sys.exit(main())"


# The head of each peer script (run by the peer venv's python as ``script MODE JSON_ARGS``): one thread, no telemetry,
# hub or logger integrations (mlflow is importable from segkit's env and would log), and the training both benches do.
PEER_PRELUDE = r'''
import json, sys
import torch
torch.set_num_threads(1)
from ultralytics import YOLO, settings
mode, args = sys.argv[1], json.loads(sys.argv[2])
settings.update({k: False for k in ("sync", "hub", "clearml", "comet", "dvc", "mlflow", "raytune", "tensorboard",
                                    "wandb", "vscode_msg", "openvino_msg") if k in settings})


def train(project):
    """args["model"] from scratch on the CPU for args["hours"] (Ultralytics' time= plan), no AMP, no plots."""
    YOLO(args["model"]).train(data=args["data"], time=args["hours"], epochs=args["epochs"], imgsz=args["imgsz"],
                              batch=args["batch"], workers=0, device="cpu", amp=False, plots=False, pretrained=False,
                              project=project, name="train", exist_ok=True, seed=0, verbose=False)
'''


def one_thread_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment with every math library held to one thread (plus ``extra``)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "NO_ALBUMENTATIONS_UPDATE": "1", "PYTHONUNBUFFERED": "1"}  # fmt: skip
    return {**env, **(extra or {})}


def install_peer(env_dir: Path, specs: tuple[str, ...] = PEER_SPECS) -> Path:
    """Create ``env_dir`` (a venv that sees segkit's site-packages through a .pth file), pip-install ``specs`` there.

    Returns:
        The peer venv's python.
    """
    python = env_dir / "bin" / "python"
    if not python.exists():
        import venv

        venv.EnvBuilder(with_pip=False).create(env_dir)
    site = next((env_dir / "lib").glob("python*/site-packages"))
    import site as site_mod

    (site / "_segkit_venv.pth").write_text("\n".join(site_mod.getsitepackages()) + "\n")
    # pip (from segkit's env, run by the peer's interpreter) installs into the peer env only and leaves
    # packages it finds outside that env alone.
    subprocess.run([str(python), "-m", "pip", "install", "-q", *specs], check=True)
    return python


def peer_python(env_dir: Path, install: bool) -> Path:
    """The peer venv's python, installed first with ``install``; exits naming the remedy when there is none."""
    if install:
        return install_peer(env_dir)
    python = env_dir / "bin" / "python"
    if not python.exists():
        sys.exit(f"no peer environment at {env_dir}: rerun with --install-peer (installs {' '.join(PEER_SPECS)} there)")
    return python


def peer_env(out: Path) -> dict[str, str]:
    """The peer's environment: one thread, offline, its settings kept under ``out`` (not in the home folder)."""
    cfg = out / "peer_config"
    cfg.mkdir(parents=True, exist_ok=True)
    return one_thread_env({"YOLO_OFFLINE": "1", "YOLO_CONFIG_DIR": str(cfg), "MPLBACKEND": "Agg"})


def peer_version(python: Path, out: Path) -> str:
    """The peer's ultralytics version, or "n/a" when its venv cannot import it."""
    try:
        proc = subprocess.run([str(python), "-c", "import ultralytics; print(ultralytics.__version__)"],
                              capture_output=True, text=True, env=peer_env(out))  # fmt: skip
    except OSError:
        return "n/a"
    return proc.stdout.strip() or "n/a"


def launch(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """Start ``cmd`` in the repository root, its output in ``log``."""
    print("$", shlex.join(cmd), f"> {log}", flush=True)
    return subprocess.Popen(cmd, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT, cwd=ROOT)


def wait_all(procs: dict[str, subprocess.Popen], starts: dict[str, float], out: Path) -> tuple[dict, dict]:
    """Reap the processes in the order they end; on the first failure stop the others and exit, naming its log
    (``out/NAME.log``).

    Returns:
        ``(wall, cpu)``: seconds per name from its start to its end, and its user + system CPU seconds (wait4).
        Under load the wall time is shared with other jobs; the CPU seconds say what each run really got.
    """
    wall: dict[str, float] = {}
    cpu: dict[str, float] = {}
    pending = {proc.pid: name for name, proc in procs.items()}
    while pending:
        pid, status, usage = os.wait4(-1, 0)
        if pid not in pending:
            continue
        name = pending.pop(pid)
        wall[name] = time.perf_counter() - starts[name]
        cpu[name] = usage.ru_utime + usage.ru_stime
        rc = os.waitstatus_to_exitcode(status)
        procs[name].returncode = rc
        print(f"{name}: exit {rc} after {wall[name] / 60:.1f} min, {cpu[name] / 60:.1f} CPU min", flush=True)
        if rc:
            for other in pending:  # the others' results would be of no use: stop them, not leave them running
                procs[pending[other]].terminate()
            sys.exit(f"{name} failed: see {out / (name + '.log')}")
    return wall, cpu


def run_info(out: Path, wall: dict, cpu: dict, load_before: tuple, command: list[str]) -> dict[str, Any]:
    """Save the training run's times, loads and command line to ``out/wall.json`` (what ``--eval-only`` reads)."""
    info = {"wall": wall, "cpu": cpu, "load_before": list(load_before), "load_after": list(os.getloadavg()),
            "command": command, "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}  # fmt: skip
    (out / "wall.json").write_text(json.dumps(info))
    return info


def budget_train(cfg: dict[str, Any], run_dir: Path, minutes: float, fallback_epochs: int | None) -> dict[str, Any]:
    """Point a segkit config's ``train`` block at ``run_dir`` (CPU, workers 0) with a ``minutes`` budget.

    A segkit whose Trainer has no ``max_minutes`` trains ``fallback_epochs`` epochs instead (when given).

    Returns:
        ``{"budget": bool, "epochs": int, "batch": int}``.
    """
    import inspect

    from segkit import Trainer

    train = cfg.setdefault("train", {})
    train.update(out_dir=str(run_dir), workers=0, device="cpu")
    budget = "max_minutes" in inspect.signature(Trainer).parameters
    if budget:
        train.update(max_minutes=float(minutes), epochs=max(int(train.get("epochs", 10)), 1000))
    elif fallback_epochs:
        train["epochs"] = int(fallback_epochs)
    return {"budget": budget, "epochs": train.get("epochs", 10), "batch": int(train.get("batch_size", 8))}


def segkit_epochs(run: Path) -> tuple[int, float | None]:
    """Epochs finished (rows with validation metrics) and the Trainer's mean training images/s over them."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    epochs = [r for r in rows if any(k.startswith("val/") for k in r)]
    speeds = [r["train/images_per_s"] for r in rows if "train/images_per_s" in r]
    return len(epochs), (sum(speeds) / len(speeds) if speeds else None)


def yolo_epochs(run: Path) -> int:
    """Epochs an Ultralytics run finished (rows of its results.csv)."""
    csv = run / "results.csv"
    return max(0, len(csv.read_text().strip().splitlines()) - 1) if csv.exists() else 0


def machine() -> str:
    """The CPU (``/proc/cpuinfo`` model name, cores, ISA from ``torch.cpu.get_capabilities()``) and torch version."""
    import torch

    names = [ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")]
    cpu = names[0] if names else platform.processor()
    caps = torch.cpu.get_capabilities() if hasattr(torch.cpu, "get_capabilities") else {}
    isa = [f for f in ("avx2", "avx512_f", "avx512_bf16", "amx_bf16") if caps.get(f)]
    if not caps:  # torch older than get_capabilities: the kernel's flags
        flags = next((ln for ln in open("/proc/cpuinfo") if ln.startswith("flags")), "")
        isa = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f" {f}" in flags]
    return f"{cpu}, {os.cpu_count()} cores ({', '.join(isa) or 'no AVX2'}); torch {torch.__version__}"


def loads(values: Any) -> str:
    """A load average triple as ``"1.0 0.8 0.5"``."""
    return " ".join(f"{x:.1f}" for x in values)


def write_results(text_block: str, key: str, heading: str, path: Path | None = None) -> None:
    """Replace the block between ``<!-- key:start -->`` and ``<!-- key:end -->`` of bench/RESULTS.md, or append it
    under ``## heading`` at the end of the file."""
    path = path or Path(__file__).with_name("RESULTS.md")
    begin, end = f"<!-- {key}:start -->", f"<!-- {key}:end -->"
    text = path.read_text() if path.is_file() else ""
    block = f"{begin}\n{text_block.rstrip()}\n{end}"
    if begin in text and end in text:
        text = text[: text.index(begin)] + block + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip() + f"\n\n## {heading}\n\n" + block + "\n"
    path.write_text(text)


def peer_label(model: str) -> str:
    """``yolo26n-seg.yaml`` -> ``YOLO26n-seg``: the peer model's name as its authors write it."""
    stem = Path(model).stem
    return "YOLO" + stem[4:] if stem.lower().startswith("yolo") else stem
