"""Pictures of predictions and runs: overlays with legends, instance drawings, training reports (PNG out)."""

from segkit.viz.figures import figure_to_array, new_figure, save_figure
from segkit.viz.histograms import plot_weight_histograms, weight_histograms
from segkit.viz.instances import draw_instances, instance_colors, mask_outline
from segkit.viz.overlay import colorize, overlay_mask
from segkit.viz.report import per_image_miou, plot_confusion, plot_curves, plot_worst, write_report
from segkit.viz.semantic import plot_comparison, plot_overlay

__all__ = [
    "colorize",
    "draw_instances",
    "figure_to_array",
    "instance_colors",
    "mask_outline",
    "new_figure",
    "overlay_mask",
    "per_image_miou",
    "plot_comparison",
    "plot_confusion",
    "plot_curves",
    "plot_overlay",
    "plot_weight_histograms",
    "plot_worst",
    "save_figure",
    "weight_histograms",
    "write_report",
]
