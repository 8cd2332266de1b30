"""``Trainer(compile=...)``: torch.compile (inductor) trains like eager, resumes exactly, writes checkpoints an
uncompiled model loads, and falls back to eager with one line where it cannot run.

Tolerance: a compiled step differs from the eager one in the order of float sums (inductor fuses and reorders),
so losses are compared with ``rtol=1e-4`` and weights with ``atol=1e-5`` (seen on this CPU: identical, since
convolutions stay oneDNN calls and only the pointwise ops around them are fused); a compiled run resumed into a
compiled run runs the same kernels on the same numbers and is bit-identical (``torch.equal``).

Run under torchrun by ``test_ddp_compiled_matches_single_process_eager`` (``python -m torch.distributed.run ...
tests/engine/test_compile.py OUT``): 2 CPU processes, compiled after the DDP wrap.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # under torchrun: this checkout's segkit and tests

from segkit import Trainer  # noqa: E402
from segkit.checkpoint import load_checkpoint  # noqa: E402
from segkit.engine import compiling  # noqa: E402
from tests.engine._kill import KillAfterStep  # noqa: E402
from tests.engine._nets import TinyNet  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
STEPS = 8  # 2 epochs of 16 images at batch 4


def make_data():
    from segkit.datasets import build_dataset

    return (
        build_dataset("shapes", split="train", num_images=16, image_size=24),
        build_dataset("shapes", split="val", num_images=4, image_size=24),
    )


def _trainer(out_dir, compile, callbacks=(), dropout=0.0, **kwargs):
    torch.manual_seed(1)
    train, val = make_data()
    options = {"epochs": 2, "batch_size": 4, "lr": 0.01, "scheduler": "cosine", "warmup_iters": 2, "log_every": 1,
               "seed": 3, "device": "cpu", **kwargs}  # fmt: skip
    return Trainer(TinyNet(dropout=dropout), "ce", train, val, compile=compile, callbacks=callbacks,
                   out_dir=out_dir, **options)  # fmt: skip


def _losses(run_dir):
    rows = [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]
    return [r["train/loss"] for r in rows if "train/lr" in r]


def test_compiled_training_matches_eager(tmp_path, capsys):
    eager = _trainer(tmp_path / "eager", False)
    eager_metrics = eager.fit()
    capsys.readouterr()
    compiled = _trainer(tmp_path / "compiled", True)
    assert compiled.compiled and compiled.model is compiled.module  # wrapped when fit starts, not before
    metrics = compiled.fit()
    assert type(compiled.model).__name__ == "OptimizedModule"
    assert compiled.module is compiled.model._orig_mod  # the plain module: checkpoints, EMA, optimizer
    out = capsys.readouterr().out
    assert out.count("compile: the first training step took") == 1  # printed once, at the first step
    assert compiled.compile_seconds is not None and compiled.compile_seconds > 0
    assert compiled.model._orig_mod is compiled.module  # compiled once: the same wrapper all run long

    losses, reference = _losses(tmp_path / "compiled"), _losses(tmp_path / "eager")
    assert len(losses) == STEPS
    torch.testing.assert_close(losses, reference, rtol=1e-4, atol=0)
    for (name, x), y in zip(compiled.module.state_dict().items(), eager.module.state_dict().values()):
        torch.testing.assert_close(x, y, rtol=0, atol=1e-5, msg=name)
    # Validation ran the compiled model in eval mode (the training wrapper's eval graph).
    assert metrics["val/miou"] == pytest.approx(eager_metrics["val/miou"], abs=1e-6)


def _interrupted(out_dir, compile, at=7, **options):
    """A run killed after step 7: its last.pt was written at step 6 (epoch 2, batch 2)."""
    with pytest.raises(KeyboardInterrupt):
        _trainer(out_dir, compile, [KillAfterStep(at)], **options).fit()


def test_compiled_resume_is_exact_and_checkpoint_loads_uncompiled(tmp_path):
    # Dropout (inductor draws its random numbers from the restored generator) and EMA (updated from the
    # uncompiled module; validation compiles the EMA model) are both part of the resumed state.
    options = {"dropout": 0.3, "ema": 0.8, "ema_warmup": 0, "checkpoint_every": 2}
    reference = _trainer(tmp_path / "ref", True, **options)
    reference.fit()
    assert reference._compiled_eval is not None and reference._compiled_eval._orig_mod is reference.ema.module

    _interrupted(tmp_path / "run", True, **options)
    state = load_checkpoint(tmp_path / "run" / "last.pt")
    assert (state["global_step"], state["batches_done"]) == (6, 2)
    assert not any(k.startswith("_orig_mod.") for k in [*state["model"], *state["ema"]])
    resumed = _trainer(tmp_path / "run", True, **options)
    resumed.fit(resume="last")
    for (name, x), y in zip(resumed.module.state_dict().items(), reference.module.state_dict().values()):
        assert torch.equal(x, y), name
    for x, y in zip(resumed.ema.state_dict().values(), reference.ema.state_dict().values()):
        assert torch.equal(x, y)
    assert _losses(tmp_path / "run") == _losses(tmp_path / "ref")

    # The compiled run's checkpoint loads into a plain model with strict keys and predicts as the trainer does.
    plain = TinyNet(dropout=0.3).eval()
    plain.load_state_dict(load_checkpoint(tmp_path / "run" / "last.pt")["model"], strict=True)
    image = make_data()[1][0]["image"][None]
    with torch.no_grad():
        torch.testing.assert_close(plain(image), resumed.module.eval()(image), rtol=0, atol=0)


@pytest.mark.parametrize("first, then", [(True, False), (False, True)], ids=["compiled-to-eager", "eager-to-compiled"])
def test_resume_across_compile_settings(tmp_path, first, then):
    """A checkpoint of a compiled run resumes eager and back, ending where an eager run ends (within tolerance)."""
    reference = _trainer(tmp_path / "ref", False, checkpoint_every=2)
    reference.fit()
    _interrupted(tmp_path / "run", first, checkpoint_every=2)
    resumed = _trainer(tmp_path / "run", then, checkpoint_every=2)
    resumed.fit(resume="last")
    assert resumed.global_step == STEPS
    for (name, x), y in zip(resumed.module.state_dict().items(), reference.module.state_dict().values()):
        torch.testing.assert_close(x, y, rtol=0, atol=1e-5, msg=name)


def test_compile_falls_back_to_eager_with_one_line(tmp_path, capsys, monkeypatch):
    train, val = make_data()
    # compile="auto" on a CPU: eager (compiling costs more than it gains in a short run).
    auto = Trainer(TinyNet(), "ce", train, compile="auto", device="cpu", out_dir=tmp_path / "a")
    assert not auto.compiled and auto.model is auto.module
    assert "compile=auto: eager on cpu" in capsys.readouterr().out
    # An environment where torch.compile cannot work (no C compiler, ...): the probe's reason, never a crash.
    monkeypatch.setattr(compiling, "compile_probe", lambda device: ("InvalidCxxCompiler: no working C++ compiler", 0.0))
    broken = Trainer(TinyNet(), "ce", train, compile=True, device="cpu", epochs=1, out_dir=tmp_path / "b")
    line = "compile: torch.compile cannot run here (InvalidCxxCompiler: no working C++ compiler), running eager"
    assert capsys.readouterr().out.count(line) == 1
    assert not broken.compiled and broken.model is broken.module
    broken.fit()
    assert "compile: the first training step" not in capsys.readouterr().out
    with pytest.raises(ValueError, match="compile: expected False, True or 'auto'"):
        Trainer(TinyNet(), "ce", train, compile="yes", device="cpu", out_dir=tmp_path / "c")


def test_detection_models_run_eager_with_one_line(tmp_path, capsys):
    from segkit.datasets import build_dataset

    train = build_dataset("shapes", split="train", task="instance", num_images=2, image_size=64)
    model = {"name": "mask_rcnn", "backbone": "resnet18_fpn", "weights": None, "weights_backbone": None}
    trainer = Trainer(model, None, train, task="instance", compile=True, device="cpu", out_dir=tmp_path)
    assert not trainer.compiled and trainer.model is trainer.module
    out = capsys.readouterr().out
    assert out.count("compile not supported for this model (MaskRCNN: detection models have data-dependent") == 1
    assert "running eager" in out


def _ddp_main(out: Path) -> None:
    torch.set_num_threads(1)
    trainer = _trainer(out, True, batch_size=2)
    trainer.fit()
    rank = torch.distributed.get_rank()
    (out / f"rank{rank}.json").write_text(json.dumps({"compiled": trainer.compiled, "type": type(trainer.model).__name__,
                                                      "inner": type(trainer.model._orig_mod).__name__}))  # fmt: skip
    torch.distributed.destroy_process_group()
    # Gloo's worker threads can abort the interpreter's finalisation ('terminate called without an active
    # exception', 1 run in 6 here; pytorch/pytorch#179291): the results are written, leave at once.
    sys.stdout.flush(), sys.stderr.flush()
    os._exit(0)


def test_ddp_compiled_matches_single_process_eager(tmp_path):
    """2 processes (gloo), batch 2 each, compiled after the DDP wrap: the weights of 1 eager process with batch 4."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", __file__,
           str(tmp_path / "ddp")]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for rank in (0, 1):
        info = json.loads((tmp_path / "ddp" / f"rank{rank}.json").read_text())
        assert info == {"compiled": True, "type": "OptimizedModule", "inner": "DistributedDataParallel"}
    assert proc.stdout.count("compile: the first training step took") == 1  # rank 0 only
    single = _trainer(tmp_path / "one", False)
    single.fit()
    state = load_checkpoint(tmp_path / "ddp" / "last.pt")["model"]
    assert not any(k.startswith(("_orig_mod.", "module.")) for k in state)
    for name, value in single.module.state_dict().items():
        torch.testing.assert_close(state[name], value, rtol=0, atol=1e-5, msg=name)


if __name__ == "__main__":
    _ddp_main(Path(sys.argv[1]))
