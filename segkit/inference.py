"""``Predictor``: load a checkpoint and turn images (paths, arrays, tensors) into class-index masks."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from segkit.datasets.base import IMAGENET_MEAN, IMAGENET_STD
from segkit.engine.checkpoint import CheckpointError, load_checkpoint, load_state_dict_checked
from segkit.models import build_model

__all__ = ["Predictor", "read_image"]


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as ``(H, W, 3)`` uint8 RGB.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not a readable image (truncated, corrupt); the message names it.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image not found: {path}")
    try:
        with Image.open(path) as im:
            im.load()
            return np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ValueError(f"cannot read image {path}: {exc}") from None


class Predictor:
    """Run a semantic model on images of any size and return masks at the original size.

    Args:
        model: the network (logits ``(N, C, H, W)``).
        class_names: names per class index (for legends).
        palette: ``(C, 3)`` uint8 colours.
        device: "auto", "cpu", "cuda", ...
        mean, std: normalisation used in training (RGB, [0, 1] units).
    """

    def __init__(
        self,
        model: nn.Module,
        class_names: Sequence[str] | None = None,
        palette: np.ndarray | Sequence[Sequence[int]] | None = None,
        device: str | torch.device = "auto",
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ) -> None:
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.class_names = list(class_names) if class_names is not None else None
        self.palette = None if palette is None else np.asarray(palette, dtype=np.uint8)
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | torch.device = "auto") -> Predictor:
        """Rebuild the model saved by the Trainer (its config is inside the checkpoint) and load it.

        Raises:
            CheckpointError: unreadable file, no model config inside, or weights that do not fit.
        """
        ckpt = load_checkpoint(path)
        cfg = ckpt.get("config") or {}
        model_cfg = dict(cfg.get("model") or {})
        if "name" not in model_cfg:
            raise CheckpointError(
                f"{path}: no model config inside (a plain state dict?); build the model yourself and use "
                f"Predictor(model) after loading the weights"
            )
        name = model_cfg.pop("name")
        model_cfg.setdefault("num_classes", ckpt.get("num_classes"))
        model = build_model(name, **model_cfg)
        load_state_dict_checked(model, ckpt["model"], source=str(path))
        return cls(model, ckpt.get("class_names"), ckpt.get("palette"), device=device)

    def preprocess(self, image: np.ndarray) -> torch.Tensor:
        """``(H, W, 3)`` uint8 -> normalised ``(1, 3, H, W)`` float32 on the device."""
        x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float() / 255.0
        return ((x - self.mean) / self.std).to(self.device)

    @torch.no_grad()
    def predict(self, image: str | Path | np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        """Predict class indices.

        Args:
            image: a file path, an ``(H, W, 3)`` uint8 array, or a normalised float tensor batch ``(N, 3, H, W)``.

        Returns:
            ``(H, W)`` int64 array for a path or array; ``(N, H, W)`` int64 tensor for a tensor batch.
        """
        if isinstance(image, torch.Tensor):
            return self._logits(image.to(self.device)).argmax(1)
        if isinstance(image, (str, Path)):
            image = read_image(image)
        arr = np.asarray(image)
        if arr.ndim != 3 or arr.shape[2] != 3:
            raise ValueError(f"predict: expected an (H, W, 3) RGB image, got shape {arr.shape}")
        return self._logits(self.preprocess(arr.astype(np.uint8))).argmax(1)[0].cpu().numpy()

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        return out[0] if isinstance(out, (tuple, list)) else out

    def __call__(self, image: Any) -> Any:
        return self.predict(image)
