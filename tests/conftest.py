"""Shared fixtures: tiny datasets and models so the whole suite stays fast on 2 CPU cores."""

from __future__ import annotations

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture
def tiny_shapes():
    """Factory for small shapes datasets: ``tiny_shapes(split, n, size)``."""
    from segkit.datasets import build_dataset

    def make(split: str = "train", n: int = 16, size: int = 32, **kw):
        return build_dataset("shapes", split=split, num_images=n, image_size=size, **kw)

    return make


@pytest.fixture
def fake_peer_env(tmp_path):
    """A stand-in for bench's peer venv (runs/peer_env): its ``bin/python`` runs this interpreter, so a stub peer
    script (the test's) runs without ultralytics."""
    import sys

    python = tmp_path / "peer_env" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    return python.parents[1]
