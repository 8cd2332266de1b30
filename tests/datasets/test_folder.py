"""folder: images/ + masks/ by stem, split lists, palettes, inferred classes."""

import numpy as np
import torch
from PIL import Image

from segkit.datasets import build_dataset


def test_index_masks_any_suffix_and_inferred_num_classes(tmp_path, layouts):
    stems = layouts.write_folder(tmp_path, num_classes=4)
    ds = build_dataset("folder", root=tmp_path)
    stored = [np.asarray(Image.open(tmp_path / "masks" / f"{s}.png")) for s in stems]
    assert ds.num_classes == max(int(m.max()) for m in stored) + 1 == 4
    assert ds.class_names == ("class_0", "class_1", "class_2", "class_3")
    assert [p.name for p, _ in ds.items] == ["img_0.png", "img_1.jpg", "img_2.png"]
    for i in range(3):
        assert torch.equal(ds[i]["mask"], torch.from_numpy(stored[i].astype(np.int64)))
        image = np.asarray(Image.open(ds.items[i][0]).convert("RGB"))
        assert np.array_equal(ds.load_raw(i)[0], image)


def test_split_list_and_given_names(tmp_path, layouts):
    layouts.write_folder(tmp_path)
    (tmp_path / "val.txt").write_text("img_2\nimg_0.png\n")
    ds = build_dataset("folder", root=tmp_path, split="val", num_classes=4, class_names=["a", "b", "c", "d"])
    assert [p.stem for p, _ in ds.items] == ["img_2", "img_0"] and ds.class_names == ("a", "b", "c", "d")


def test_rgb_masks_through_palette(tmp_path, layouts):
    rng = np.random.default_rng(1)
    palette = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0]], np.uint8)
    code = rng.integers(0, 4, size=(24, 32))
    table = np.concatenate([palette, [[9, 9, 9]]]).astype(np.uint8)  # code 3: a colour not in the palette
    layouts.save(tmp_path / "images" / "a.jpg", layouts.rand_image(rng))
    layouts.save(tmp_path / "masks" / "a.png", table[code])
    ds = build_dataset("folder", root=tmp_path, palette=palette.tolist())
    assert ds.num_classes == 3
    assert torch.equal(ds[0]["mask"], torch.from_numpy(np.array([0, 1, 2, 255])[code]))


def test_exif_orientation_is_ignored_so_labels_stay_aligned(tmp_path, layouts):
    layouts.write_folder(tmp_path, n=1)
    path = tmp_path / "images" / "img_0.jpg"
    im = Image.fromarray(layouts.rand_image(np.random.default_rng(2)))
    exif = im.getexif()
    exif[0x0112] = 6  # "rotate 90": a viewer would turn it, but the mask is drawn on the stored pixels
    (tmp_path / "images" / "img_0.png").unlink()
    im.save(path, exif=exif)
    ds = build_dataset("folder", root=tmp_path, num_classes=4)
    assert np.array_equal(ds.load_raw(0)[0], np.asarray(Image.open(path).convert("RGB")))
    assert ds[0]["image"].shape == (3, 24, 32)
