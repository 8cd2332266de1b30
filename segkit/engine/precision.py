"""``amp="auto"``: the autocast precision this machine runs fast (bf16, fp16 + GradScaler, or fp32), and why."""

from __future__ import annotations

import functools
from pathlib import Path

import torch

from segkit.config import AMP_CHOICES

__all__ = ["cpu_bf16_support", "cuda_bf16_support", "resolve_amp"]


@functools.cache
def cpu_bf16_support() -> str | None:
    """The CPU's native bf16 matrix instructions: ``"AMX-BF16"``, ``"AVX512-BF16"``, or None.

    Read from ``torch.cpu.get_capabilities()`` (cpuinfo, any OS; torch >= 2.6), else from the ``flags`` line of
    ``/proc/cpuinfo`` (Linux). Without either, bf16 autocast runs in emulation on the CPU (AVX2 / plain AVX-512
    machines, ARM here) and is slower than fp32. ``torch.backends.cpu.get_cpu_capability()`` is not enough: it
    says ``"AVX512"`` on CPUs with and without AVX512-BF16. Tests monkeypatch this function.

    Returns:
        The best bf16 instruction set found, or None.
    """
    flags: set[str] = set()
    get_capabilities = getattr(torch.cpu, "get_capabilities", None)
    if callable(get_capabilities):
        try:
            flags = {name for name, value in get_capabilities().items() if value is True}
        except Exception:  # an unknown CPU must not stop training: fall back to the kernel's flags
            flags = set()
    if not flags:
        try:
            text = Path("/proc/cpuinfo").read_text()
        except OSError:
            text = ""
        line = next((ln for ln in text.splitlines() if ln.startswith("flags")), "")
        flags = set(line.partition(":")[2].split())
    if "amx_bf16" in flags:
        return "AMX-BF16"
    if "avx512_bf16" in flags:
        return "AVX512-BF16"
    return None


def cuda_bf16_support(device: torch.device) -> bool:
    """True when the CUDA ``device`` computes in bf16 natively (``torch.cuda.is_bf16_supported`` without
    emulation: compute capability 8.0+, Ampere and later; ROCm devices). Tests monkeypatch this function."""
    with torch.cuda.device(device):
        try:
            return bool(torch.cuda.is_bf16_supported(including_emulation=False))
        except TypeError:  # torch < 2.3 has no including_emulation and did not count emulation
            return bool(torch.cuda.is_bf16_supported())


def resolve_amp(amp: str | None, device: torch.device) -> tuple[str | None, str | None]:
    """Turn ``amp`` into the precision the Trainer uses on ``device``.

    ``"auto"`` picks bf16 autocast on a CPU with AMX-BF16 or AVX512-BF16 (``cpu_bf16_support``) and on a CUDA
    device with native bf16 (``cuda_bf16_support``), fp16 autocast + GradScaler on older CUDA devices, and fp32
    (None) otherwise. Other values are returned unchanged.

    Args:
        amp: None, ``"auto"``, ``"bf16"`` or ``"fp16"``.
        device: the device the model trains on.

    Returns:
        ``(amp, line)``: None, ``"bf16"`` or ``"fp16"``, and for ``"auto"`` the line that says what it chose and
        why (``"amp=auto: bf16 (CPU has AMX-BF16)"``), else None.

    Raises:
        ValueError: ``amp`` is none of the accepted values.

    Example:
        >>> resolve_amp("auto", torch.device("cpu"))  # doctest: +SKIP
        ('bf16', 'amp=auto: bf16 (CPU has AVX512-BF16)')
    """
    if amp not in AMP_CHOICES:
        raise ValueError(f"amp: expected None, 'auto', 'bf16' or 'fp16', got {amp!r}")
    if amp != "auto":
        return amp, None
    if device.type == "cpu":
        isa = cpu_bf16_support()
        if isa is not None:
            return "bf16", f"amp=auto: bf16 (CPU has {isa})"
        return None, "amp=auto: fp32 (the CPU has neither AMX-BF16 nor AVX512-BF16: bf16 would run emulated, slower)"
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device) if torch.cuda.is_available() else "CUDA device"
        if cuda_bf16_support(device):
            return "bf16", f"amp=auto: bf16 ({name} computes in bf16)"
        return "fp16", f"amp=auto: fp16 + GradScaler ({name} has no native bf16)"
    return None, f"amp=auto: fp32 (no autocast precision chosen for {device.type} devices)"
