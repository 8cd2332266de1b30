"""Multi-band TIFF images (remote sensing, microscopy) with ``tifffile``: bands last, pixels as stored."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

__all__ = ["ImageInfo", "is_tiff", "read_tiff", "tiff_info"]

TIFF_SUFFIXES = (".tif", ".tiff")
# Pixel types kept as stored (albumentations and OpenCV handle them); other TIFF types are read as float32.
_KEPT = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32))


class ImageInfo(NamedTuple):
    """An image's size, channel count and pixel type, as ``read_image`` returns it (read from the header)."""

    height: int
    width: int
    channels: int
    dtype: np.dtype


def is_tiff(path: str | Path) -> bool:
    """True for ``.tif`` / ``.tiff`` files (read with ``read_tiff``)."""
    return Path(path).suffix.lower() in TIFF_SUFFIXES


def read_tiff(path: str | Path) -> np.ndarray:
    """Read the first image series of a TIFF file as ``(H, W, C)``.

    The layout rule: a 2-D image is one channel ``(H, W, 1)``. A 3-D one is channels-last when
    tifffile's axes end with ``S`` (contiguous samples, ``YXS``), band-first ``(C, H, W)`` when they
    start with ``S`` (separate sample planes), and otherwise (a stack of pages) band-first exactly
    when its first axis is strictly shorter than the two others. Leading axes of length 1 (ImageJ's
    time or depth) are dropped. uint8, uint16 and float32 pixels are kept as stored, other types
    (int16, uint32, float64, ...) are converted to float32.

    Args:
        path: the file.

    Returns:
        ``(H, W, C)`` contiguous array.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a readable TIFF, or more than 3 dimensions; the message names the file.
    """
    import tifffile

    try:
        with tifffile.TiffFile(str(path)) as tif:
            series = tif.series[0]
            axes = series.axes
            image = series.asarray()
    except FileNotFoundError:
        raise
    except Exception as exc:  # noqa: BLE001 -- tifffile raises many types for bad files; each names the file
        raise _error(path, exc) from None
    shape, band_first = _layout(image.shape, axes, path)
    image = image.reshape(shape)
    if image.ndim == 2:
        image = image[..., None]
    elif band_first:
        image = np.moveaxis(image, 0, -1)
    if image.dtype not in _KEPT:
        image = image.astype(np.float32)
    return np.ascontiguousarray(image)


def tiff_info(path: str | Path) -> ImageInfo:
    """``read_tiff``'s output size, channels and pixel type, from the header only (no pixel decoded).

    Raises:
        FileNotFoundError: no such file.
        ValueError: as ``read_tiff``.
    """
    import tifffile

    try:
        with tifffile.TiffFile(str(path)) as tif:
            series = tif.series[0]
            shape, axes, dtype = tuple(series.shape), series.axes, np.dtype(series.dtype)
    except FileNotFoundError:
        raise
    except Exception as exc:  # noqa: BLE001 -- as in read_tiff
        raise _error(path, exc) from None
    shape, band_first = _layout(shape, axes, path)
    dtype = dtype if dtype in _KEPT else np.dtype(np.float32)
    if len(shape) == 2:
        return ImageInfo(shape[0], shape[1], 1, dtype)
    h, w, c = (shape[1], shape[2], shape[0]) if band_first else shape
    return ImageInfo(h, w, c, dtype)


def _layout(shape: tuple[int, ...], axes: str, path: str | Path) -> tuple[tuple[int, ...], bool]:
    """``(shape without leading 1s, band-first?)`` of a TIFF series, by the rule in ``read_tiff``."""
    shape = tuple(shape)
    while len(shape) > 3 and shape[0] == 1:
        shape, axes = shape[1:], axes[1:]
    if len(shape) not in (2, 3):
        raise ValueError(f"{path}: a TIFF of shape {shape} (axes {axes}); expected (H, W), (H, W, C) or (C, H, W)")
    if len(shape) == 2 or axes.endswith("S"):
        return shape, False
    return shape, axes.startswith("S") or (shape[0] < shape[1] and shape[0] < shape[2])


def _error(path: str | Path, exc: Exception) -> ValueError:
    hint = "; pip install imagecodecs to decode its compression" if "imagecodecs" in str(exc) else ""
    return ValueError(f"{path}: corrupt or unsupported TIFF file ({exc}){hint}")
