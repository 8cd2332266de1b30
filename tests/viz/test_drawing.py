"""Instance drawing, semantic overlays and legends, checked pixel by pixel and patch by patch."""

import numpy as np
import pytest
import torch

from segkit.inference import Instances
from segkit.viz import draw_instances, instance_colors, mask_outline, plot_comparison, plot_overlay

NAMES = ["background", "circle", "square", "triangle"]


def _instances() -> Instances:
    masks = np.zeros((3, 40, 60), bool)
    masks[0, 5:15, 5:20] = True
    masks[1, 20:30, 30:50] = True
    masks[2, 25:35, 2:12] = True
    boxes = np.array([[5, 5, 20, 15], [30, 20, 50, 30], [2, 25, 12, 35]], np.float32)
    return Instances(
        boxes,
        np.array([1, 2, 3]),
        np.array([0.9, 0.4, 0.8], np.float32),
        masks,
        [NAMES[i] for i in (1, 2, 3)],
        (40, 60),
    )


def test_figure_mode_draws_one_box_and_one_caption_per_kept_instance():
    image = np.full((40, 60, 3), 100, np.uint8)
    fig = draw_instances(image, _instances(), min_score=0.5, figure=True)
    ax = fig.axes[0]
    assert len(ax.patches) == 2
    assert sorted(t.get_text() for t in ax.texts) == ["circle 0.90", "triangle 0.80"]
    fig = draw_instances(image, _instances(), classes=["square"], figure=True)
    assert [t.get_text() for t in fig.axes[0].texts] == ["square 0.40"]


def test_array_mode_fills_outlines_and_boxes_each_instance_in_its_colour():
    image = np.full((40, 60, 3), 100, np.uint8)
    colours = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255]], np.uint8)
    out = draw_instances(image, _instances(), colors=colours, alpha=0.5, show_captions=False)
    assert out.shape == image.shape and out.dtype == np.uint8
    # interior pixel of instance 0: 50/50 blend of grey 100 and red
    np.testing.assert_array_equal(out[10, 12], [178, 50, 50])
    # mask border pixel: the pure colour (outline); box rows overlap the mask border here too
    np.testing.assert_array_equal(out[14, 12], [255, 0, 0])
    np.testing.assert_array_equal(out[29, 40], [0, 255, 0])
    # untouched background
    np.testing.assert_array_equal(out[38, 58], [100, 100, 100])
    # a filtered-out instance leaves its pixels alone
    filtered = draw_instances(image, _instances(), colors=colours, min_score=0.5, show_captions=False)
    np.testing.assert_array_equal(filtered[25, 40], [100, 100, 100])


def test_a_torchvision_style_dict_is_accepted():
    inst = _instances()
    d = {
        "boxes": torch.tensor(inst.boxes),
        "labels": torch.tensor(inst.labels),
        "scores": torch.tensor(inst.scores),
        "masks": torch.tensor(inst.masks[:, None].astype(np.float32)),
    }
    fig = draw_instances(np.zeros((40, 60, 3), np.uint8), d, NAMES, min_score=0.5, figure=True)
    assert sorted(t.get_text() for t in fig.axes[0].texts) == ["circle 0.90", "triangle 0.80"]


def test_mask_outline_matches_scipy_erosion():
    from scipy import ndimage

    rng = np.random.default_rng(0)
    m = ndimage.binary_dilation(rng.random((30, 40)) > 0.9, iterations=2)
    cross = ndimage.generate_binary_structure(2, 1)
    np.testing.assert_array_equal(mask_outline(m), m & ~ndimage.binary_erosion(m, cross, border_value=0))


def test_instance_colors_are_distinct_and_bright():
    c = instance_colors(12)
    assert c.shape == (12, 3) and len({tuple(x) for x in c}) == 12 and (c.max(1) == 255).all()


def test_overlay_legend_names_the_classes_present():
    image = np.zeros((20, 30, 3), np.uint8)
    mask = np.zeros((20, 30), np.int64)
    mask[2:5, 2:5], mask[10:12, 10:20] = 1, 3
    palette = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]], np.uint8)
    fig = plot_overlay(image, mask, palette, NAMES)
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["background", "circle", "triangle"]
    target = mask.copy()
    target[15:18, 0:4] = 2
    fig = plot_comparison(image, target, mask, palette, NAMES)
    assert len(fig.axes) == 3
    assert [t.get_text() for t in fig.axes[-1].get_legend().get_texts()] == NAMES
    with pytest.raises(ValueError, match="differ in size"):
        plot_overlay(image, mask[:5], palette)
