"""``amp="auto"``: the precision chosen for each probed machine, the line that says why, and configs that ask for it."""

import json
from pathlib import Path

import pytest
import torch
import yaml

from segkit import Trainer
from segkit.config import ConfigError, load_config
from segkit.engine import precision
from segkit.engine.precision import resolve_amp
from tests.engine._nets import TinyNet

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.mark.parametrize(
    "isa, amp, line",
    [
        ("AMX-BF16", "bf16", "amp=auto: bf16 (CPU has AMX-BF16)"),
        ("AVX512-BF16", "bf16", "amp=auto: bf16 (CPU has AVX512-BF16)"),
        (None, None, "amp=auto: fp32 (the CPU has neither AMX-BF16 nor AVX512-BF16: bf16 would run emulated, slower)"),
    ],
)
def test_auto_on_cpu_follows_the_probe(monkeypatch, isa, amp, line):
    monkeypatch.setattr(precision, "cpu_bf16_support", lambda: isa)
    assert resolve_amp("auto", torch.device("cpu")) == (amp, line)


@pytest.mark.parametrize("bf16, amp", [(True, "bf16"), (False, "fp16")])
def test_auto_on_cuda_follows_the_probe(monkeypatch, bf16, amp):
    monkeypatch.setattr(precision, "cuda_bf16_support", lambda device: bf16)
    chosen, line = resolve_amp("auto", torch.device("cuda"))
    assert chosen == amp
    assert line.startswith("amp=auto: bf16 (" if bf16 else "amp=auto: fp16 + GradScaler (")


def test_explicit_values_pass_through_and_other_devices_get_fp32():
    for amp in (None, "bf16", "fp16"):
        assert resolve_amp(amp, torch.device("cpu")) == (amp, None)
    assert resolve_amp("auto", torch.device("meta")) == (
        None,
        "amp=auto: fp32 (no autocast precision chosen for meta devices)",
    )
    with pytest.raises(ValueError, match="amp: expected None, 'auto', 'bf16' or 'fp16', got 'bf8'"):
        resolve_amp("bf8", torch.device("cpu"))


def test_cpu_probe_reads_proc_cpuinfo_without_torch_capabilities(monkeypatch, tmp_path):
    """Older torch (no ``torch.cpu.get_capabilities``): the kernel's flags line decides."""
    monkeypatch.delattr(torch.cpu, "get_capabilities", raising=False)
    cpuinfo = tmp_path / "cpuinfo"
    monkeypatch.setattr(precision, "Path", lambda _: cpuinfo)
    expected = {"fpu avx2 avx512f avx512_bf16 amx_tile amx_bf16": "AMX-BF16", "fpu avx2 avx512f avx512_bf16": "AVX512-BF16",
                "fpu avx2 avx512f avx512bw": None}  # fmt: skip
    for flags, isa in expected.items():
        cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\nbugs\t\t:\n")
        precision.cpu_bf16_support.cache_clear()
        assert precision.cpu_bf16_support() == isa, flags
    precision.cpu_bf16_support.cache_clear()


def test_trainer_prints_the_choice_once_and_uses_it(tmp_path, monkeypatch, capsys):
    from segkit.datasets import build_dataset

    train = build_dataset("shapes", split="train", num_images=4, image_size=24)
    monkeypatch.setattr(precision, "cpu_bf16_support", lambda: "AMX-BF16")
    trainer = Trainer(TinyNet(), "ce", train, amp="auto", epochs=1, batch_size=2, device="cpu", out_dir=tmp_path / "a")
    assert (trainer.amp, trainer.amp_choice) == ("bf16", "amp=auto: bf16 (CPU has AMX-BF16)")
    with trainer._autocast():
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16 and torch.is_autocast_enabled("cpu")
    trainer.fit()
    assert capsys.readouterr().out.count("amp=auto:") == 1
    assert trainer.scaler is None
    # Logged with the run's params: what this machine ran, not only "auto".
    assert json.loads((tmp_path / "a" / "params.json").read_text())["resolved"] == {"amp": "bf16", "device": "cpu"}

    monkeypatch.setattr(precision, "cpu_bf16_support", lambda: None)
    fp32 = Trainer(TinyNet(), "ce", train, amp="auto", device="cpu", out_dir=tmp_path / "b")
    assert fp32.amp is None and "amp=auto: fp32" in capsys.readouterr().out
    with fp32._autocast():
        assert not torch.is_autocast_enabled("cpu")
    Trainer(TinyNet(), "ce", train, device="cpu", out_dir=tmp_path / "c")  # amp=None, the default: no line
    assert "amp=" not in capsys.readouterr().out
    with pytest.raises(ValueError, match="amp: expected None, 'auto', 'bf16' or 'fp16', got 'bfloat16'"):
        Trainer(TinyNet(), "ce", train, amp="bfloat16", device="cpu", out_dir=tmp_path / "d")


def test_config_with_amp_auto_loads_and_builds_a_trainer(tmp_path, monkeypatch):
    raw = {
        "model": {"name": "unet", "encoder": "resnet18", "encoder_weights": None},
        "data": {"name": "shapes", "image_size": 32, "train": {"split": "train", "num_images": 4}, "val": None},
        "train": {"epochs": 1, "amp": "auto", "compile": "auto", "device": "cpu", "out_dir": str(tmp_path / "run")},
    }
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(raw))
    cfg = load_config(tmp_path / "cfg.yaml")
    assert (cfg.train.amp, cfg.train.compile) == ("auto", "auto")
    monkeypatch.setattr(precision, "cpu_bf16_support", lambda: "AVX512-BF16")
    trainer = Trainer.from_config(cfg)
    assert trainer.amp == "bf16" and trainer.compiled is False
    assert trainer.config["train"]["amp"] == "auto"  # the saved config asks again on the machine that reruns it
    for bad, message in (("train.amp=bf17", "train.amp: expected one of null, auto, bf16, fp16, got 'bf17'"),
                         ("train.compile=fast", "train.compile: expected one of false, true, auto, got 'fast'")):  # fmt: skip
        with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
            load_config(tmp_path / "cfg.yaml", [bad])


def test_shipped_configs_ask_for_auto_not_a_fixed_precision():
    for path in sorted(CONFIGS.glob("*.yaml")):
        amp = load_config(path, validate=False).train.amp
        assert amp in (None, "auto"), f"{path.name}: amp {amp!r} runs fast on some machines only"
    assert load_config(CONFIGS / "camvid_unet.yaml", validate=False).train.amp == "auto"
