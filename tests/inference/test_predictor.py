"""Predictor: original size, batches, sliding window and TTA against hand-computed references."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from segkit import Predictor
from segkit.inference import sliding_window, window_starts


def _conv(kernel: int, classes: int = 4, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Conv2d(3, classes, kernel, padding=kernel // 2)


def _image(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("weighting", ["gaussian", "uniform"])
def test_sliding_window_equals_whole_image_without_cross_window_context(weighting):
    model = _conv(1)
    image = _image(45, 70)
    whole = Predictor(model, device="cpu")
    windowed = Predictor(model, device="cpu", window=16, overlap=0.5, weighting=weighting)
    x = whole.preprocess(image)
    with torch.no_grad():
        torch.testing.assert_close(windowed.predict_logits(x), model(x), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(windowed.predict(image), whole.predict(image))


def _naive_uniform_windows(model, x, roi, overlap):
    """Reference: MONAI's scan rule (n = ceil((size - roi) / step) + 1, starts clamped), plain loops."""
    _, _, h, w = x.shape
    step = int(roi * (1 - overlap))

    def starts(size):
        n = math.ceil((size - roi) / step) + 1
        return sorted({min(i * step, size - roi) for i in range(n)})

    total = torch.zeros(x.shape[0], 4, h, w)
    count = torch.zeros(1, 1, h, w)
    for y in starts(h):
        for xx in starts(w):
            total[..., y : y + roi, xx : xx + roi] += model(x[..., y : y + roi, xx : xx + roi])
            count[..., y : y + roi, xx : xx + roi] += 1
    return total / count


def test_uniform_sliding_window_matches_a_naive_loop_for_a_model_with_context():
    model = _conv(3)
    x = torch.randn(2, 3, 45, 70)
    with torch.no_grad():
        ours = sliding_window(model, x, 16, overlap=0.5, mode="uniform", batch_size=3)
        torch.testing.assert_close(ours, _naive_uniform_windows(model, x, 16, 0.5), rtol=1e-5, atol=1e-5)
        # a 3x3 conv sees zero padding at window borders, so the result is not the whole-image one
        assert not torch.allclose(ours, model(x), atol=1e-4)


def test_window_starts_cover_the_axis_and_end_at_the_border():
    assert window_starts(45, 16, 8) == [0, 8, 16, 24, 29]
    assert window_starts(10, 16, 8) == [0]
    assert window_starts(32, 16, 16) == [0, 16]


def test_flip_tta_is_the_mean_of_plain_and_unflipped_predictions():
    model = _conv(3)
    pred = Predictor(model, device="cpu", tta=True, flips=("h", "v"))
    x = torch.randn(1, 3, 20, 28)
    with torch.no_grad():
        expected = (model(x) + model(x.flip(3)).flip(3) + model(x.flip(2)).flip(2)) / 3
        torch.testing.assert_close(pred.predict_logits(x), expected)
        assert not torch.allclose(expected, model(x), atol=1e-4)  # the conv is not flip-symmetric


def test_multiscale_tta_resizes_back_to_the_input_size():
    model = _conv(3)
    pred = Predictor(model, device="cpu", tta=True, flips=(), scales=(1.0, 0.5))
    x = torch.randn(1, 3, 20, 28)
    with torch.no_grad():
        half = F.interpolate(x, size=(10, 14), mode="bilinear", align_corners=False)
        back = F.interpolate(model(half), size=(20, 28), mode="bilinear", align_corners=False)
        torch.testing.assert_close(pred.predict_logits(x), (model(x) + back) / 2)


class _Strided(nn.Module):
    """Logits at half resolution, as many encoders give before upsampling."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, stride=2, padding=1)

    def forward(self, x):
        return self.conv(x)


def test_predictions_have_the_original_size_for_paths_arrays_lists_and_batches(tmp_path):
    from PIL import Image

    pred = Predictor(_Strided(), device="cpu", batch_size=2)
    a, b, c = _image(33, 47, 1), _image(33, 47, 2), _image(20, 30, 3)
    Image.fromarray(a).save(tmp_path / "a.png")
    single = pred.predict(tmp_path / "a.png")
    assert single.shape == (33, 47) and single.dtype == np.int64
    outs = pred.predict([a, c, b])
    assert [o.shape for o in outs] == [(33, 47), (20, 30), (33, 47)]
    np.testing.assert_array_equal(outs[0], single)
    np.testing.assert_array_equal(outs[2], pred.predict(b))
    stacked = pred.predict(np.stack([a, b]))
    assert stacked.shape == (2, 33, 47)
    np.testing.assert_array_equal(stacked[1], outs[2])
    t = pred.predict(pred.preprocess(a))
    assert isinstance(t, torch.Tensor) and t.shape == (1, 33, 47)


def test_bad_inputs_raise_clear_errors():
    pred = Predictor(_conv(1), device="cpu")
    with pytest.raises(ValueError, match="RGB image"):
        pred.predict(np.zeros((4, 5, 7), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        pred.predict(np.zeros((4, 5, 3), np.float32))
    with pytest.raises(ValueError, match="overlap"):
        Predictor(_conv(1), device="cpu", overlap=1.0)
    with pytest.raises(FileNotFoundError, match="nope.png"):
        pred.predict("nope.png")


def test_gaussian_window_weights_match_scipy():
    from scipy.signal.windows import gaussian

    from segkit.inference import window_weights

    w = window_weights(16, 24, "gaussian").numpy()
    ref = np.outer(gaussian(16, std=0.125 * 16), gaussian(24, std=0.125 * 24))
    np.testing.assert_allclose(w, np.maximum(ref / ref.max(), 1e-3), rtol=1e-5)
    assert (window_weights(5, 7, "uniform") == 1).all()
