"""collate_semantic on samples of different sizes: padding values, recorded sizes, per-pixel keys, errors."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from segkit.datasets import collate_instances, collate_semantic, padded_groups, predict_unpadded


def _sample(h, w, seed, with_map=True):
    g = torch.Generator().manual_seed(seed)
    hwc = torch.randn(h, w, 3, generator=g)
    sample = {
        "image": hwc.permute(2, 0, 1),  # the channels-last view datasets return
        "mask": torch.randint(0, 3, (h, w), generator=g),
        "path": f"img_{seed}.jpg",
    }
    if with_map:
        sample["dist_map"] = torch.randn(3, h, w, generator=g)
    return sample


SIZES = [(5, 7), (8, 4), (6, 6)]


def test_different_sizes_are_padded_bottom_right_with_zero_and_ignore_index():
    samples = [_sample(h, w, i) for i, (h, w) in enumerate(SIZES)]
    batch = collate_semantic(samples, ignore_index=254)
    assert batch["padded"] is True
    assert batch["image"].shape == (3, 3, 8, 7) and batch["image"].is_contiguous()
    assert batch["mask"].shape == (3, 8, 7) and batch["mask"].dtype == torch.int64
    assert batch["dist_map"].shape == (3, 3, 8, 7)
    assert batch["image_sizes"].dtype == torch.int64 and batch["image_sizes"].tolist() == [list(s) for s in SIZES]
    assert batch["path"] == ["img_0.jpg", "img_1.jpg", "img_2.jpg"]
    for i, (s, (h, w)) in enumerate(zip(samples, SIZES)):
        assert torch.equal(batch["image"][i, :, :h, :w], s["image"])
        assert torch.equal(batch["mask"][i, :h, :w], s["mask"])
        assert torch.equal(batch["dist_map"][i, :, :h, :w], s["dist_map"])
        pad = torch.ones(8, 7, dtype=torch.bool)
        pad[:h, :w] = False
        assert bool((batch["mask"][i][pad] == 254).all())
        assert bool((batch["image"][i][:, pad] == 0).all()) and bool((batch["dist_map"][i][:, pad] == 0).all())


def test_default_ignore_index_is_255_and_same_sizes_stack_as_before():
    batch = collate_semantic([_sample(5, 7, 0), _sample(8, 4, 1)])
    assert int(batch["mask"][0, 7, 0]) == 255
    same = [_sample(6, 5, i) for i in range(3)]
    batch = collate_semantic(same)
    assert batch["padded"] is False and batch["image_sizes"].tolist() == [[6, 5]] * 3
    assert torch.equal(batch["image"], torch.stack([s["image"] for s in same]))
    assert torch.equal(batch["mask"], torch.stack([s["mask"] for s in same]))


def test_a_tensor_key_that_is_not_per_pixel_and_differs_names_the_key():
    a, b = _sample(5, 7, 0, with_map=False), _sample(8, 4, 1, with_map=False)
    a["boxes"], b["boxes"] = torch.zeros(2, 4), torch.zeros(3, 4)
    with pytest.raises(ValueError, match=r"'boxes' has shapes \[\(2, 4\), \(3, 4\)\].*not per-pixel"):
        collate_semantic([a, b])
    a["boxes"], b["boxes"] = torch.zeros(2, 4), torch.ones(2, 4)  # same shape: stacked
    assert collate_semantic([a, b])["boxes"].shape == (2, 2, 4)


def test_padding_in_a_worker_process():
    class Varied(torch.utils.data.Dataset):
        def __len__(self):
            return 3

        def __getitem__(self, i):
            return _sample(*SIZES[i], i)

    batch = next(iter(DataLoader(Varied(), batch_size=3, num_workers=1, collate_fn=collate_semantic)))
    assert batch["padded"] and batch["image"].shape == (3, 3, 8, 7)
    expected = _sample(*SIZES[1], 1)
    assert torch.equal(batch["image"][1, :, :8, :4], expected["image"])
    assert int(batch["mask"][1, 0, 5]) == 255


def test_padded_groups_and_predict_unpadded():
    sizes = torch.tensor([[4, 6], [3, 5], [4, 6]])
    groups = padded_groups(sizes)
    assert [(h, w, idx.tolist()) for h, w, idx in groups] == [(4, 6, [0, 2]), (3, 5, [1])]
    seen = []

    def predict(images):  # records the input sizes; predicts a map only a crop can give (h + w everywhere)
        seen.append(tuple(images.shape))
        return torch.full((images.shape[0], *images.shape[-2:]), images.shape[-2] + images.shape[-1])

    batch = {"image": torch.zeros(3, 3, 4, 6), "image_sizes": sizes}
    out = predict_unpadded(predict, batch)
    assert seen == [(2, 3, 4, 6), (1, 3, 3, 5)]
    assert out.shape == (3, 4, 6) and out.dtype == torch.int64
    assert bool((out[0] == 10).all()) and bool((out[1, :3, :5] == 8).all())
    assert int(out[1, 3:].abs().sum() + out[1, :, 5:].abs().sum()) == 0  # padding left at 0


def test_collate_instances_pads_a_semantic_mask():
    samples = [
        {"image": torch.zeros(3, h, w), "target": {}, "path": "x", "mask": torch.zeros(h, w, dtype=torch.int64)}
        for h, w in SIZES
    ]
    batch = collate_instances(samples, ignore_index=7)
    assert batch["mask"].shape == (3, 8, 7) and int(batch["mask"][0, 7, 6]) == 7
    assert [tuple(im.shape[-2:]) for im in batch["image"]] == SIZES  # images stay a list at their sizes
    assert np.array_equal(batch["mask"][1, :8, :4].numpy(), np.zeros((8, 4)))
