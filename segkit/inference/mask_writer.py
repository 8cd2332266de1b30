"""Predicted masks written as files in the training masks' own encoding (0/255, their palette, their colours)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["describe_mask_format", "encode_mask", "save_mask"]


def encode_mask(
    mask: np.ndarray, mask_format: Mapping[str, Any] | None = None, palette: Any = None, index: bool = False
) -> Any:
    """A class-index mask as a PIL image stored the way the training masks were.

    Args:
        mask: ``(H, W)`` class indices.
        mask_format: the training masks' stored form (a checkpoint's or an ONNX file's ``mask_format``, see
            ``segkit.datasets.mask_format.stored_mask_format``); None: index masks.
        palette: ``(K, 3)`` colours shown by the palette of an index mask (None: greys).
        index: write class indices whatever ``mask_format`` says (a palette PNG coloured by ``palette``).

    Returns:
        A ``PIL.Image``: ``"L"`` (or 16-bit ``"I;16"``) holding ``values[class]`` for greyscale sets
        (0/255 for binary masks), ``"RGB"`` holding ``colours[class]`` for colour-mask sets, ``"P"``
        holding the class indices otherwise (with the training files' palette for palette-PNG sets).

    Raises:
        ValueError: a class index with no stored value or colour (a mask_format for fewer classes).
    """
    from PIL import Image

    classes = np.asarray(mask).astype(np.int64)
    fmt = None if index else mask_format
    kind = None if fmt is None else fmt.get("kind")
    if kind in ("grey", "rgb"):
        table = np.asarray(fmt["values"] if kind == "grey" else fmt["colours"])  # type: ignore[index]
        if classes.size and int(classes.max()) >= len(table):
            raise ValueError(
                f"mask_format: class {int(classes.max())} predicted but the training masks store {len(table)} "
                f"classes; write index masks instead (segkit predict --index-masks)"
            )
        stored = table[classes]
        if kind == "rgb":
            return Image.fromarray(stored.astype(np.uint8), mode="RGB")
        if int(fmt.get("bits", 8)) == 16:  # type: ignore[union-attr]
            return Image.fromarray(stored.astype(np.uint16))
        return Image.fromarray(stored.astype(np.uint8), mode="L")
    image = Image.fromarray(classes.astype(np.uint8), mode="P")
    colours = fmt["palette"] if kind == "palette" else palette  # type: ignore[index]
    if colours is None:
        colours = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1)
    image.putpalette(np.asarray(colours, np.uint8).reshape(-1).tolist())
    return image


def save_mask(
    path: str | Path,
    mask: np.ndarray,
    mask_format: Mapping[str, Any] | None = None,
    palette: Any = None,
    index: bool = False,
) -> Path:
    """Write ``encode_mask(mask, mask_format, palette, index)`` as a PNG at ``path`` (lossless, whatever the set's format).

    Returns:
        The path written.
    """
    path = Path(path)
    encode_mask(mask, mask_format, palette, index).save(path, format="PNG")
    return path


def describe_mask_format(mask_format: Mapping[str, Any] | None, index: bool = False) -> str:
    """How masks are written, for one line of the CLI: e.g. ``greyscale 0/255 like the training masks``."""
    if index or mask_format is None:
        return "class indices (palette PNG)"
    kind = mask_format.get("kind")
    if kind == "grey":
        values = "/".join(str(v) for v in mask_format["values"][:6]) + (
            "/..." if len(mask_format["values"]) > 6 else ""
        )
        bits = f"{mask_format.get('bits', 8)}-bit greyscale"
        return f"{bits} {values} like the training masks"
    if kind == "rgb":
        return f"RGB colours of the training masks ({len(mask_format['colours'])} colours)"
    return "class indices with the training masks' palette"
