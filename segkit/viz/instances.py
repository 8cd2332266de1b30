"""Instance drawing, the equivalent of Mask R-CNN's ``display_instances``: masks, outlines, boxes, "name score"."""

from __future__ import annotations

import colorsys
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from segkit.inference.instances import Instances
from segkit.viz.figures import new_figure

__all__ = ["draw_instances", "instance_colors", "mask_outline"]


def instance_colors(n: int, seed: int | None = 0) -> np.ndarray:
    """``n`` bright, well-separated colours ``(n, 3)`` uint8 (evenly spaced hues, shuffled by ``seed``)."""
    hsv = [(i / max(n, 1), 1.0, 1.0) for i in range(n)]
    colours = np.asarray([colorsys.hsv_to_rgb(*c) for c in hsv]).reshape(-1, 3)
    if seed is not None:
        colours = colours[np.random.default_rng(seed).permutation(n)]
    return (colours * 255).round().astype(np.uint8)


def mask_outline(mask: np.ndarray) -> np.ndarray:
    """Boundary pixels of a boolean mask ``(H, W)``: inside pixels with a 4-neighbour outside (or at the border)."""
    m = np.asarray(mask, dtype=bool)
    p = np.pad(m, 1, constant_values=False)
    interior = p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
    return m & ~interior


def _as_instances(
    instances: Instances | Mapping[str, Any], size: tuple[int, int], class_names: Sequence[str] | None
) -> Instances:
    if isinstance(instances, Instances):
        if class_names is not None:
            names = [str(class_names[lb]) if 0 <= lb < len(class_names) else str(lb) for lb in instances.labels]
            return Instances(
                instances.boxes, instances.labels, instances.scores, instances.masks, names, instances.image_size
            )
        return instances
    # A torchvision output or a dataset target: tensors or arrays under boxes / labels / scores / masks.
    d = {k: (v.detach().cpu().numpy() if hasattr(v, "detach") else np.asarray(v)) for k, v in instances.items()}
    n = len(d["boxes"])
    out = {"boxes": d["boxes"], "labels": d["labels"], "scores": d.get("scores", np.ones(n, np.float32))}
    if "masks" in d:
        m = d["masks"]
        m = m[:, 0] if m.ndim == 4 else m
        out["masks"] = m > 0.5 if m.dtype.kind == "f" else m.astype(bool)
    return Instances.from_torchvision({k: _tensor(v) for k, v in out.items()}, size, class_names, mask_threshold=0.5)


def _tensor(a: np.ndarray) -> Any:
    import torch

    return torch.from_numpy(np.ascontiguousarray(a))


def draw_instances(
    image: np.ndarray,
    instances: Instances | Mapping[str, Any],
    class_names: Sequence[str] | None = None,
    *,
    min_score: float = 0.0,
    classes: Sequence[str | int] | None = None,
    colors: np.ndarray | Sequence[Sequence[int]] | None = None,
    alpha: float = 0.5,
    show_masks: bool = True,
    show_boxes: bool = True,
    show_captions: bool = True,
    show_scores: bool = True,
    figure: bool = False,
    title: str | None = None,
) -> Any:
    """Draw each instance in its own colour: mask fill and outline, box, and a "name score" caption.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        instances: ``Instances`` (from ``Predictor.predict``) or a dict with ``boxes``, ``labels``,
            optional ``scores`` and ``masks`` (a torchvision output or a dataset target).
        class_names: names by label (default: the names stored in ``instances``).
        min_score: hide instances scoring below.
        classes: draw only these labels or names.
        colors: one ``(3,)`` uint8 colour per kept instance (default: ``instance_colors``).
        alpha: mask fill opacity.
        show_masks, show_boxes, show_captions: parts to draw.
        show_scores: captions "name score"; False: the name only (ground truth, which has no score).
        figure: return a matplotlib ``Figure`` (one ``Rectangle`` patch and one text per instance drawn)
            instead of an image array.
        title: figure title (figure mode).

    Returns:
        ``(H, W, 3)`` uint8 image, or a ``Figure`` when ``figure=True``.
    """
    from PIL import Image, ImageDraw

    image = np.asarray(image, dtype=np.uint8)
    h, w = image.shape[:2]
    inst = _as_instances(instances, (h, w), class_names).filter(min_score, classes)
    n = len(inst)
    cols = instance_colors(n) if colors is None else np.asarray(colors, dtype=np.uint8).reshape(-1, 3)
    if len(cols) < n:
        raise ValueError(f"draw_instances: {len(cols)} colours for {n} instances")
    canvas = image.astype(np.float32)
    if show_masks and inst.masks is not None:
        if inst.masks.shape[1:] != (h, w):
            raise ValueError(f"draw_instances: masks {inst.masks.shape[1:]} do not match the image {(h, w)}")
        for m, c in zip(inst.masks, cols):
            canvas[m] = canvas[m] * (1 - alpha) + c.astype(np.float32) * alpha
        for m, c in zip(inst.masks, cols):
            canvas[mask_outline(m)] = c
    filled = np.clip(canvas + 0.5, 0, 255).astype(np.uint8)
    captions = [f"{name} {score:.2f}" if show_scores else name for name, score in zip(inst.names, inst.scores)]

    if figure:
        from matplotlib.patches import Rectangle

        fig = new_figure((max(4.0, 6.0 * w / max(h, 1)), 6.0))
        ax = fig.add_subplot(1, 1, 1)
        ax.imshow(filled)
        ax.set_xlim(-0.5, w - 0.5)
        ax.set_ylim(h - 0.5, -0.5)
        ax.set_axis_off()
        if title:
            ax.set_title(title)
        for (x1, y1, x2, y2), c, text in zip(inst.boxes, cols, captions):
            colour = tuple(c / 255.0)
            if show_boxes:
                ax.add_patch(
                    Rectangle(
                        (x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=colour, linewidth=1.5, linestyle="dashed"
                    )
                )
            if show_captions:
                ax.text(x1, y1 + 8, text, color="w", fontsize=9, backgroundcolor="none")
        return fig

    pil = Image.fromarray(filled)
    draw = ImageDraw.Draw(pil)
    for (x1, y1, x2, y2), c, text in zip(inst.boxes, cols, captions):
        colour = tuple(int(v) for v in c)
        # Boxes are pixel-edge coordinates (x2 = last column + 1); PIL draws inclusive pixel coordinates.
        if show_boxes:
            draw.rectangle(
                [float(x1), float(y1), max(float(x1), float(x2) - 1), max(float(y1), float(y2) - 1)], outline=colour
            )
        if show_captions:
            draw.text((float(x1) + 2, float(y1) + 1), text, fill=(255, 255, 255))
    return np.asarray(pil)
