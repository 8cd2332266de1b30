"""How the training masks were stored, as plain data: what predicted masks are written back in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from segkit.datasets.mask_encoding import MaskEncoding

__all__ = ["FORMAT_KINDS", "stored_mask_format"]

# "grey": class k is stored as values[k] (8- or 16-bit greyscale); "rgb": class k is colours[k];
# "palette": a palette-mode PNG holding the class indices, with the training files' own palette.
FORMAT_KINDS = ("grey", "rgb", "palette")


def stored_mask_format(encoding: MaskEncoding, example: str | Path | None = None) -> dict[str, Any] | None:
    """The stored form of a set of label images, for writing predictions the same way.

    Args:
        encoding: the decided ``MaskEncoding`` of the training masks.
        example: one label file of the set; read (header and palette only) for palette PNGs.

    Returns:
        None for index masks (values are the classes: the default way segkit writes masks), else a
        plain-data dict (checkpoints load it with ``weights_only``): ``{"kind": "grey", "values": [...],
        "bits": 8 | 16}`` (0/255 binary masks, ``mask_values``, 16-bit index masks), ``{"kind": "rgb",
        "colours": [[r, g, b], ...]}`` (colour masks, class ``k`` is ``colours[k]``) or ``{"kind":
        "palette", "palette": [[r, g, b], ...]}`` (palette PNGs, the first file's palette); every one
        also says ``"source"``, the encoding's kind.

    Example:
        >>> stored_mask_format(dataset.encoding)   # a folder of 0/255 masks
        {'kind': 'grey', 'values': [0, 255], 'bits': 8, 'source': 'binary'}
    """
    kind, k = encoding.kind, encoding.num_classes
    if encoding.colours is not None:
        return {"kind": "rgb", "colours": np.asarray(encoding.colours, np.uint8)[:k].tolist(), "source": kind}
    if kind == "binary":
        values: list[int] | None = [0, 255]
    elif kind == "index16":
        values = list(range(k))
    else:
        values = None if encoding.values is None else [int(v) for v in encoding.values]
    if values is not None:
        return {"kind": "grey", "values": values, "bits": 16 if max(values) > 255 else 8, "source": kind}
    if kind == "palette" and example is not None:
        palette = _png_palette(example)
        if palette is not None:
            return {"kind": "palette", "palette": palette, "source": kind}
    return None


def _png_palette(path: str | Path) -> list[list[int]] | None:
    """The ``[[r, g, b], ...]`` palette of a palette-mode image, or None (not one, or unreadable)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            flat = im.getpalette() if im.mode == "P" else None
    except OSError:
        return None
    if not flat:
        return None
    return np.asarray(flat[: len(flat) // 3 * 3], np.uint8).reshape(-1, 3).tolist()
