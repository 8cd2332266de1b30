"""Run a semantic ONNX file from `segkit export` with onnxruntime, numpy and Pillow only (no PyTorch, no segkit).

    python onnx_semantic.py model.onnx OUT_DIR image.png [more images or folders] [--index-masks]

Everything comes from the file's metadata: the normalisation (mean/std in raw pixel units and the pixel type),
the class names, and how the training masks were stored, so OUT_DIR/<stem>_mask.png is written like them
(0/255 for a binary set, their colours or palette; class indices otherwise or with --index-masks), as
`segkit predict` writes it. The graph takes any height and width (unless the file says `segkit.graph_size`).
A model trained on images resized to one size (`segkit.input_size`, a folder's `image_size=`) sees each image
resized to it and its logits resized back; Pillow's resizing is close to segkit's OpenCV one, not identical.
"""

import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


def read_pixels(path, channels):
    """(H, W, C) pixels as stored: RGB for photos; TIFF bands with tifffile when it is installed."""
    if path.suffix.lower() in (".tif", ".tiff"):
        try:
            import tifffile

            pixels = tifffile.imread(path)
            if pixels.ndim == 2:
                pixels = pixels[..., None]
            elif pixels.shape[0] < min(pixels.shape[1:]):  # band-first (C, H, W)
                pixels = pixels.transpose(1, 2, 0)
            return pixels
        except ImportError:
            pass
    image = Image.open(path)
    return np.asarray(image.convert("RGB") if channels == 3 else image)


def normalise(pixels, mean, std, dtype):
    """(pixels - mean) / std as segkit computes it: integer pixels scaled by their range first, in float32."""
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    if dtype is not None and pixels.dtype != np.dtype(dtype) and dtype in ("uint8", "uint16"):
        raise SystemExit(f"expected {dtype} pixels (the training images'), got {pixels.dtype}")
    if pixels.shape[2] != len(mean):
        raise SystemExit(f"expected {len(mean)}-channel images (the training images'), got {pixels.shape}")
    scale = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(pixels.dtype, 1.0)
    x = pixels.astype(np.float32)
    if scale != 1.0:
        x /= np.float32(scale)
    x = (x - np.asarray([m / scale for m in mean], np.float32)) / np.asarray([s / scale for s in std], np.float32)
    return x.transpose(2, 0, 1)[None]  # (1, C, H, W)


def area_weights(size, new_size):
    """(new_size, size) matrix: the share of each input pixel in each output pixel (OpenCV's INTER_AREA)."""
    scale = size / new_size
    starts, ends = np.arange(new_size)[:, None] * scale, np.arange(1, new_size + 1)[:, None] * scale
    pixels = np.arange(size)[None, :]
    return np.clip(np.minimum(ends, pixels + 1) - np.maximum(starts, pixels), 0, None) / scale


def resize(array, height, width, shrink):
    """(H, W, C) -> (height, width, C): area averaging to shrink (as segkit's datasets), else bilinear (Pillow)."""
    if shrink:
        rows, cols = area_weights(array.shape[0], height), area_weights(array.shape[1], width)
        out = np.einsum("yh,hwc,xw->yxc", rows, array.astype(np.float64), cols)
    else:
        planes = [
            Image.fromarray(np.ascontiguousarray(c, np.float32), mode="F").resize((width, height), Image.BILINEAR)
            for c in array.transpose(2, 0, 1)
        ]
        out = np.stack([np.asarray(p) for p in planes], axis=-1)
    return out.astype(np.float32) if array.dtype == np.float32 else np.rint(out).astype(array.dtype)


def mask_image(classes, mask_format, palette):
    """The class-index mask stored the way the training masks were (see segkit.inference.mask_writer)."""
    kind = None if mask_format is None else mask_format["kind"]
    if kind == "grey":
        values = np.asarray(mask_format["values"])[classes]
        return Image.fromarray(values.astype(np.uint16 if mask_format["bits"] == 16 else np.uint8))
    if kind == "rgb":
        return Image.fromarray(np.asarray(mask_format["colours"], np.uint8)[classes], mode="RGB")
    image = Image.fromarray(classes.astype(np.uint8), mode="P")
    colours = mask_format["palette"] if kind == "palette" else palette
    if colours is not None:
        image.putpalette(np.asarray(colours, np.uint8).reshape(-1).tolist())
    return image


def main(argv):
    index_masks = "--index-masks" in argv
    args = [a for a in argv if a != "--index-masks"]
    if len(args) < 3:
        raise SystemExit(__doc__)
    model_path, out = args[0], Path(args[1])
    session = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    meta = {k[len("segkit.") :]: json.loads(v) for k, v in session.get_modelmeta().custom_metadata_map.items()}
    if meta.get("task") != "semantic":
        raise SystemExit(f"{model_path}: not a semantic segkit export (task {meta.get('task')!r})")
    mask_format = None if index_masks else meta["mask_format"]
    names = meta["class_names"] or [str(k) for k in range(meta["num_classes"])]
    paths = []
    for item in map(Path, args[2:]):
        paths += sorted(p for p in item.iterdir() if p.suffix.lower() in SUFFIXES) if item.is_dir() else [item]
    out.mkdir(parents=True, exist_ok=True)
    for path in paths:
        pixels = read_pixels(path, meta["in_channels"])
        height, width = pixels.shape[:2]
        if meta["input_size"] is not None:  # trained on images resized to one size: seen at that size
            h, w = meta["input_size"]
            pixels = resize(pixels.reshape(height, width, -1), h, w, shrink=h <= height and w <= width)
        x = normalise(pixels, meta["input_mean"], meta["input_std"], meta["input_dtype"])
        if meta["graph_size"] is not None and list(x.shape[2:]) != meta["graph_size"]:
            raise SystemExit(f"{path}: this graph takes {meta['graph_size']} images only, got {list(x.shape[2:])}")
        logits = session.run(["logits"], {"image": x})[0][0]  # (K, H, W)
        if logits.shape[1:] != (height, width):  # back to the image's size
            logits = resize(logits.transpose(1, 2, 0), height, width, shrink=False).transpose(2, 0, 1)
        classes = logits.argmax(0)
        mask_image(classes, mask_format, meta["palette"]).save(out / f"{path.stem}_mask.png")
        shares = np.bincount(classes.ravel(), minlength=len(names)) / classes.size
        print(f"{path.name}: " + ", ".join(f"{n} {100 * s:.1f}%" for n, s in zip(names, shares) if s > 0))


if __name__ == "__main__":
    main(sys.argv[1:])
