"""Median-frequency class weights (Eigen & Fergus 2015) leave ignored pixels out of every count."""

import numpy as np
import pytest

from segkit.datasets.summary import label_stats, median_frequency_weights


class _Masks:
    """The smallest dataset ``label_stats`` reads: ``num_classes``, ``ignore_index`` and ``load_raw``."""

    def __init__(self, masks, num_classes, ignore_index=255):
        self.masks, self.num_classes, self.ignore_index = masks, num_classes, ignore_index

    def __len__(self):
        return len(self.masks)

    def load_raw(self, i):
        return None, self.masks[i], None


def _reference(masks, num_classes, ignore_index):
    """freq(c) = pixels of c / labelled pixels of the images where c is present; w = median(freq) / freq(c)."""
    freq = []
    for c in range(num_classes):
        pixels = labelled = 0
        for m in masks:
            if (m == c).any():
                pixels += int((m == c).sum())
                labelled += int(((m >= 0) & (m < num_classes) & (m != ignore_index)).sum())
        freq.append(pixels / labelled if labelled else 0.0)
    median = np.median([f for f in freq if f > 0])
    return np.array([median / f if f > 0 else 0.0 for f in freq])


def _masks(seed, ignore_index):
    rng = np.random.default_rng(seed)
    masks = []
    for i in range(5):
        m = rng.choice([0, 1, 2], size=(12, 16), p=[0.6, 0.3, 0.1]).astype(np.uint8)
        if i % 2:
            m[m == 2] = 0  # class 2 only in some images
        m[: 2 + 2 * i] = ignore_index  # much ignore, more in later images
        masks.append(m)
    masks[3][5, 5] = 3  # class 3 in one image, one pixel
    return masks


@pytest.mark.parametrize(("seed", "ignore_index", "k"), [(0, 255, 5), (1, 255, 5), (2, 4, 4)])
def test_weights_match_an_independent_median_frequency_computation(seed, ignore_index, k):
    masks = _masks(seed, ignore_index)
    weights = median_frequency_weights(label_stats(_Masks(masks, k, ignore_index)))
    np.testing.assert_allclose(weights, _reference(masks, k, ignore_index), rtol=1e-12)
    assert k == 4 or weights[4] == 0.0  # a class that never appears


def test_a_hand_computed_case():
    # Image A: 2 px class 0, 2 px class 1, 4 px ignored. Image B: 8 px class 0.
    # freq0 = 10 / (4 + 8) = 5/6, freq1 = 2 / 4 = 1/2; median 2/3 -> w0 = 0.8, w1 = 4/3.
    # (Counting the ignored pixels would give freq0 = 10/16, freq1 = 2/8: w0 = 0.7, w1 = 1.75.)
    a = np.array([[0, 0, 1, 1], [255, 255, 255, 255]], np.uint8)
    b = np.zeros((2, 4), np.uint8)
    weights = median_frequency_weights(label_stats(_Masks([a, b], 2)))
    np.testing.assert_allclose(weights, [0.8, 4 / 3])
