"""voc and voc_aug against torchvision's VOCSegmentation and scipy-read SBD files."""

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image
from torchvision.datasets import VOCSegmentation

from segkit.datasets import build_dataset
from segkit.datasets.voc import voc_palette


@pytest.mark.parametrize("split", ["train", "val", "trainval"])
def test_voc_matches_torchvision(tmp_path, layouts, split):
    layouts.write_voc(tmp_path)
    ours = build_dataset("voc", root=tmp_path, split=split)
    ref = VOCSegmentation(str(tmp_path), year="2012", image_set=split)
    assert len(ours) == len(ref) and ours.num_classes == 21 and ours.ignore_index == 255
    for i in range(len(ref)):
        image, target = ref[i]
        raw_image, raw_mask, _ = ours.load_raw(i)
        assert np.array_equal(raw_image, np.asarray(image))
        assert np.array_equal(raw_mask, np.asarray(target))  # indices, with 255 borders
        s = ours[i]
        assert s["mask"].dtype == torch.int64 and torch.equal(s["mask"], torch.from_numpy(np.array(target)).long())
        assert s["image"].shape == (3, 24, 32) and s["path"].endswith(".jpg")


def test_voc_palette_is_the_one_in_label_files():
    # The VOC colour map: class 1 aeroplane (128, 0, 0), 15 person (192, 128, 128), 255 border (224, 224, 192).
    p = voc_palette(256)
    assert p[1].tolist() == [128, 0, 0] and p[15].tolist() == [192, 128, 128] and p[255].tolist() == [224, 224, 192]


def test_voc_aug_png_list(tmp_path, layouts):
    voc = layouts.write_voc(tmp_path)
    rng = np.random.default_rng(5)
    extra = "2008_000002"
    layouts.save(voc / "JPEGImages" / f"{extra}.jpg", layouts.rand_image(rng))
    aug = rng.integers(0, 21, size=(24, 32), dtype=np.uint8)
    (voc / "SegmentationClassAug").mkdir()
    Image.fromarray(aug).save(voc / "SegmentationClassAug" / f"{extra}.png")  # greyscale, as distributed
    (voc / "ImageSets" / "Segmentation" / "train_aug.txt").write_text(
        f"/JPEGImages/{extra}.jpg /SegmentationClassAug/{extra}.png\n/JPEGImages/2007_000032.jpg x\n"
    )
    ds = build_dataset("voc_aug", root=tmp_path, split="train_aug")
    assert len(ds) == 2
    assert np.array_equal(ds.load_raw(0)[1], aug)
    ref = VOCSegmentation(str(tmp_path), year="2012", image_set="train")
    assert np.array_equal(ds.load_raw(1)[1], np.asarray(ref[0][1]))  # falls back to SegmentationClass


def test_voc_aug_sbd_mat_and_composed_train_aug(tmp_path, layouts):
    layouts.write_voc(tmp_path)  # VOC train = 000032, 000039; val = 000063
    sbd = tmp_path / "benchmark_RELEASE" / "dataset"
    rng = np.random.default_rng(3)
    masks = {}
    for i in ("2008_000008", "2007_000063"):  # the second is in VOC val: must be left out of train_aug
        layouts.save(sbd / "img" / f"{i}.jpg", layouts.rand_image(rng))
        masks[i] = rng.integers(0, 21, size=(24, 32), dtype=np.uint8)
        (sbd / "cls").mkdir(parents=True, exist_ok=True)
        gt = {"Segmentation": masks[i], "Boundaries": np.zeros((20, 1), object), "CategoriesPresent": np.array([1])}
        scipy.io.savemat(sbd / "cls" / f"{i}.mat", {"GTcls": gt})
    (sbd / "train.txt").write_text("2008_000008\n")
    (sbd / "val.txt").write_text("2007_000063\n")
    ds = build_dataset("voc_aug", root=tmp_path, sbd_root=sbd)
    assert [p.name for p, _ in ds.items] == ["2007_000032.jpg", "2007_000039.jpg", "2008_000008.jpg"]
    ref = scipy.io.loadmat(sbd / "cls" / "2008_000008.mat")["GTcls"]["Segmentation"][0, 0]
    assert np.array_equal(ds.load_raw(2)[1], ref) and np.array_equal(ref, masks["2008_000008"])
    assert torch.equal(ds[2]["mask"], torch.from_numpy(ref.astype(np.int64)))
