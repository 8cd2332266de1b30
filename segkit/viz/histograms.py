"""Histograms of the weights of a model's first convolution layers (the article's last figure)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
from torch import nn

from segkit.viz.figures import figure_to_array  # re-exported: the trackers import it from here

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["figure_to_array", "plot_weight_histograms", "weight_histograms"]


def weight_histograms(model: nn.Module, n: int = 4) -> dict[str, np.ndarray]:
    """Return the flattened weights of the first ``n`` convolution layers of a model.

    Layers are taken in ``named_modules`` order (the order they are defined, usually input to output);
    any ``nn.Conv1d/2d/3d`` or transposed convolution counts. A DDP or EMA wrapper is looked through,
    since it only adds a ``module.`` prefix to the names.

    Args:
        model: the model.
        n: how many convolution layers.

    Returns:
        Layer name (e.g. ``"encoder.conv1.weight"``) -> 1-D float32 array of its weights, on the CPU.

    Shape:
        Each array: ``(out_channels * in_channels / groups * prod(kernel_size),)``.
    """
    if n < 1:
        raise ValueError(f"weight_histograms: n must be >= 1, got {n}")
    values: dict[str, np.ndarray] = {}
    for name, module in model.named_modules():
        if isinstance(module, nn.modules.conv._ConvNd):
            values[f"{name}.weight" if name else "weight"] = module.weight.detach().float().reshape(-1).cpu().numpy()
            if len(values) == n:
                break
    return values


def plot_weight_histograms(model_or_values: nn.Module | Mapping[str, Any], n: int = 4, bins: int = 50) -> Figure:
    """Draw one histogram per layer, side by side, as in the article's figure of first-layer weights.

    Args:
        model_or_values: a model (its first ``n`` convolution layers are used) or a mapping
            name -> array of values, as returned by :func:`weight_histograms`.
        n: how many convolution layers when a model is given; with a mapping, at most ``n`` entries.
        bins: histogram bins.

    Returns:
        A matplotlib ``Figure`` (not shown; save it or log it, then ``plt.close(fig)``).

    Raises:
        ValueError: the model has no convolution layer or the mapping is empty.

    Example:
        >>> fig = plot_weight_histograms(build_model("unet", num_classes=2), n=4)  # doctest: +SKIP
        >>> fig.savefig("weights.png")  # doctest: +SKIP
    """
    from matplotlib.figure import Figure

    if isinstance(model_or_values, nn.Module):
        values = weight_histograms(model_or_values, n)
    else:
        values = {k: np.asarray(v, dtype=np.float64).reshape(-1) for k, v in list(model_or_values.items())[:n]}
    if not values:
        raise ValueError("plot_weight_histograms: no convolution layer / no values to plot")
    # Figure() directly (not pyplot) so no global figure is kept alive and no GUI backend is needed.
    fig = Figure(figsize=(3.2 * len(values), 2.8), layout="constrained")
    axes = fig.subplots(1, len(values), squeeze=False)[0]
    for ax, (name, arr) in zip(axes, values.items()):
        finite = np.asarray(arr)[np.isfinite(arr)]
        ax.hist(finite, bins=bins, color="tab:blue", alpha=0.85)
        ax.set_title(name, fontsize=8)
        ax.set_xlabel("weight")
        ax.tick_params(labelsize=7)
    axes[0].set_ylabel("count")
    return fig
