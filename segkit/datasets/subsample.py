"""Evenly spaced sample indices: which images a summary, an encoding check or a picture reads."""

from __future__ import annotations

import numpy as np

__all__ = ["evenly_spaced"]


def evenly_spaced(n: int, k: int | None) -> list[int]:
    """``min(n, k)`` indices spread evenly over ``range(n)``, first and last included (rounded to the nearest).

    Args:
        n: number of items.
        k: how many to pick; None (or ``k >= n``): every index.

    Returns:
        Sorted distinct indices.

    Example:
        >>> evenly_spaced(10, 4)
        [0, 3, 6, 9]
    """
    if k is None or n <= k:
        return list(range(n))
    if k <= 0:
        return []
    return sorted({int(round(x)) for x in np.linspace(0, n - 1, k)})
