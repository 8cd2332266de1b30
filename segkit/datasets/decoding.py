"""Image and label-file decoding (OpenCV, PIL for palettes and truncated JPEGs, tifffile) and header reads."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from segkit.datasets.bad_samples import BadSampleError, _MissingFileError
from segkit.datasets.tiff import ImageInfo, is_tiff, read_tiff, tiff_info

__all__ = ["ImageInfo", "image_info", "image_size", "read_image", "read_mask"]

# Decoding in the loader processes must not fight the DataLoader for cores.
cv2.setNumThreads(0)


# OpenCV >= 4.10 decodes straight to RGB (same pixels, no separate BGR->RGB pass); older ones decode BGR.
_DECODE_RGB: int = getattr(cv2, "IMREAD_COLOR_RGB", cv2.IMREAD_COLOR)


def read_image(path: str | Path) -> np.ndarray:
    """Decode an image file: ``(H, W, 3)`` uint8 RGB, or for TIFF files ``(H, W, C)`` as stored.

    TIFF files (``.tif``/``.tiff``, read with ``tifffile``) keep their bands and pixel type: uint8,
    uint16 and float32 as stored, other types as float32. A 2-D TIFF is one channel ``(H, W, 1)``.
    A 3-D TIFF is band-first ``(C, H, W)`` (and transposed to ``(H, W, C)``) when tifffile's axes
    say so (``SYX``: separate sample planes), channels-last when they say ``YXS``, and otherwise when
    its first axis is strictly shorter than the two others (a stack of C pages of ``H x W``).

    Other formats (PNG, JPEG, ...) are decoded with OpenCV (faster than PIL here) as uint8 RGB, grey
    and RGBA images included. Truncated JPEGs (which OpenCV would decode partially with a warning
    only) and undecodable files raise ``BadSampleError`` naming the file; a missing file raises one
    that is also a ``FileNotFoundError``.

    Returns:
        ``(H, W, C)`` array.
    """
    if is_tiff(path):
        with _tiff_errors(path):
            return read_tiff(path)
    data = _read_bytes(path)
    if data[:2].tobytes() == b"\xff\xd8" and b"\xff\xd9" not in data[-64:].tobytes():
        # No end-of-image marker near the end: truncated, or a trailer after it (some cameras add one).
        # PIL tells them apart: it raises on a truncated stream.
        from PIL import Image

        try:
            with Image.open(path) as im:
                return np.asarray(im.convert("RGB"))
        except OSError as exc:
            raise BadSampleError(f"{path}: truncated or corrupt JPEG ({exc})") from None
    # Labels are drawn on the stored pixels: never rotate by EXIF orientation (PIL and pycocotools do not).
    image = cv2.imdecode(data, _DECODE_RGB | cv2.IMREAD_IGNORE_ORIENTATION)
    if image is None:
        raise BadSampleError(f"{path}: corrupt or unsupported image file (could not decode)")
    return image if _DECODE_RGB != cv2.IMREAD_COLOR else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_mask(path: str | Path) -> np.ndarray:
    """Decode a label image: ``(H, W)`` indices for greyscale/16-bit/palette PNGs, ``(H, W, 3)`` RGB otherwise.

    Palette ("P" mode) PNGs are read as their indices, never as colours (OpenCV would expand them).
    """
    data = _read_bytes(path)
    # PNG colour type 3 (IHDR byte 25) = palette: decode with PIL to keep the indices.
    if data[:8].tobytes() == b"\x89PNG\r\n\x1a\n" and data.size > 25 and data[25] == 3:
        from PIL import Image

        try:
            with Image.open(path) as im:
                return np.asarray(im)
        except OSError as exc:
            raise BadSampleError(f"{path}: corrupt label file ({exc})") from None
    mask = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if mask is None:
        raise BadSampleError(f"{path}: corrupt or unsupported label file (could not decode)")
    if mask.ndim == 3:
        return cv2.cvtColor(mask, cv2.COLOR_BGRA2RGB if mask.shape[2] == 4 else cv2.COLOR_BGR2RGB)
    return mask


def image_info(path: str | Path) -> ImageInfo:
    """Return ``ImageInfo(height, width, channels, dtype)`` of ``read_image(path)`` from the file header only.

    TIFF headers are read with ``tifffile`` (no pixels decoded); other formats with PIL, and they
    always decode to 3-channel uint8.
    """
    if is_tiff(path):
        with _tiff_errors(path):
            return tiff_info(path)
    from PIL import Image

    try:
        with Image.open(path) as im:
            w, h = im.size
    except FileNotFoundError:
        raise _MissingFileError(f"{path}: cannot read (No such file or directory)") from None
    except OSError as exc:
        raise BadSampleError(f"{path}: corrupt or unsupported image file ({exc})") from None
    return ImageInfo(h, w, 3, np.dtype(np.uint8))


@contextlib.contextmanager
def _tiff_errors(path: str | Path) -> Iterator[None]:
    """The TIFF reader's errors as the ``BadSampleError`` every file dataset handles."""
    try:
        yield
    except FileNotFoundError:
        raise _MissingFileError(f"{path}: cannot read (No such file or directory)") from None
    except ValueError as exc:
        raise BadSampleError(str(exc)) from None


def image_size(path: str | Path) -> tuple[int, int]:
    """Return ``(H, W)`` from the file header only (cheap; used to check pairs at construction)."""
    info = image_info(path)
    return info.height, info.width


def _read_bytes(path: str | Path) -> np.ndarray:
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except FileNotFoundError as exc:
        raise _MissingFileError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except OSError as exc:
        raise BadSampleError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if data.size == 0:
        raise BadSampleError(f"{path}: empty file")
    return data
