"""Every bad-input case of the issue gives an error that names the file and the reason."""

import json
import re

import numpy as np
import pytest
from PIL import Image
from torch.utils.data import DataLoader

from segkit.datasets import BadSampleError, BadSampleLog, build_dataset, collate_semantic


def _named(exc_info, path) -> bool:
    return str(path) in str(exc_info.value)


def test_missing_root_and_split_files_describe_the_layout(tmp_path, layouts):
    for name, kw, hint in [
        ("voc", {}, "VOCdevkit/VOC2012"),
        ("camvid", {}, "{split}annot/"),
        ("cityscapes", {}, "leftImg8bit"),
        ("coco", {}, "instances_"),
        ("folder", {}, "masks/"),
    ]:
        missing = tmp_path / f"no_{name}"
        with pytest.raises(FileNotFoundError) as e:
            build_dataset(name, root=missing, **kw)
        assert _named(e, missing) and hint in str(e.value), name
    layouts.write_voc(tmp_path)
    with pytest.raises(FileNotFoundError) as e:
        build_dataset("voc", root=tmp_path, split="train_aug")
    assert "ImageSets/Segmentation/train_aug.txt" in str(e.value) and "expected VOCdevkit" in str(e.value)
    layouts.write_folder(tmp_path / "f")
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "f" / "val.txt"))):
        build_dataset("folder", root=tmp_path / "f", split="val")
    (tmp_path / "coco" / "val2017").mkdir(parents=True)
    with pytest.raises(
        FileNotFoundError, match=re.escape(str(tmp_path / "coco" / "annotations" / "instances_val2017.json"))
    ):
        build_dataset("coco", root=tmp_path / "coco", split="val")


def test_image_without_mask_at_construction(tmp_path, layouts):
    layouts.write_folder(tmp_path)
    (tmp_path / "masks" / "img_1.png").unlink()
    with pytest.raises(BadSampleError) as e:
        build_dataset("folder", root=tmp_path)
    assert _named(e, tmp_path / "images" / "img_1.jpg") and "no label file" in str(e.value)
    voc = layouts.write_voc(tmp_path / "v")
    (voc / "SegmentationClass" / "2007_000039.png").unlink()
    with pytest.raises(BadSampleError, match="2007_000039"):
        build_dataset("voc", root=tmp_path / "v")


def test_size_mismatch_at_construction(tmp_path, layouts):
    names = layouts.write_camvid_segnet(tmp_path)
    bad = tmp_path / "trainannot" / names[1]
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(bad)
    with pytest.raises(BadSampleError) as e:
        build_dataset("camvid", root=tmp_path)
    assert _named(e, bad) and "10x10 differs" in str(e.value)


def test_label_out_of_range_names_file_and_values(tmp_path, layouts):
    names = layouts.write_camvid_segnet(tmp_path)
    bad = tmp_path / "trainannot" / names[0]
    Image.fromarray(np.full((24, 32), 17, np.uint8)).save(bad)
    ds = build_dataset("camvid", root=tmp_path)
    index = [p.name for p, _ in ds.items].index(names[0])
    with pytest.raises(BadSampleError) as e:
        ds[index]
    assert _named(e, bad) and "[17]" in str(e.value) and f"sample {index}" in str(e.value)


def test_corrupt_and_truncated_images(tmp_path, layouts):
    layouts.write_folder(tmp_path)
    corrupt = tmp_path / "images" / "img_0.png"
    corrupt.write_bytes(b"not an image at all")
    truncated = tmp_path / "images" / "img_1.jpg"
    truncated.write_bytes(truncated.read_bytes()[:-200])
    with pytest.raises(BadSampleError) as e:
        build_dataset("folder", root=tmp_path)  # the header check already fails on garbage
    assert _named(e, corrupt)
    ds = build_dataset("folder", root=tmp_path, num_classes=4, check_files=False)
    with pytest.raises(BadSampleError) as e:
        ds[0]
    assert _named(e, corrupt) and "corrupt" in str(e.value)
    with pytest.raises(BadSampleError) as e:
        ds[1]
    assert _named(e, truncated) and "truncated" in str(e.value)


@pytest.mark.parametrize(
    "edit,reason",
    [
        (lambda d: d.pop("categories"), "missing key 'categories'"),
        (lambda d: d["annotations"][0].pop("segmentation"), "has no 'segmentation'"),
        (lambda d: d["annotations"][0].update(segmentation=[[1, 2, 3, 4, 5]]), "bad polygon"),
        (lambda d: d["annotations"][2]["segmentation"].update(counts=[5, 3]), "bad RLE counts"),
        (lambda d: d["annotations"][3]["segmentation"].update(size=[7, 7]), "bad RLE size"),
        (lambda d: d["annotations"][1].update(category_id=77), "unknown category_id 77"),
    ],
)
def test_malformed_coco_json(tmp_path, layouts, edit, reason):
    data = layouts.write_coco(tmp_path)
    edit(data)
    ann = tmp_path / "annotations" / "instances_val2017.json"
    ann.write_text(json.dumps(data))
    with pytest.raises(ValueError) as e:
        build_dataset("coco", root=tmp_path, split="val")
    assert _named(e, ann) and reason in str(e.value)


def test_coco_json_that_is_not_json(tmp_path, layouts):
    layouts.write_coco(tmp_path)
    ann = tmp_path / "annotations" / "instances_val2017.json"
    ann.write_text('{"images": [')
    with pytest.raises(ValueError, match=re.escape(str(ann)) + ": not valid JSON"):
        build_dataset("coco_semantic", root=tmp_path, split="val")


def test_skip_reports_each_bad_file_once_and_counts_per_epoch(tmp_path, layouts, capsys):
    layouts.write_folder(tmp_path, n=4)
    bad = tmp_path / "images" / "img_1.jpg"
    bad.write_bytes(bad.read_bytes()[:-200])
    ds = build_dataset("folder", root=tmp_path, num_classes=4, on_bad_sample="skip")
    log = BadSampleLog("train")
    for _epoch in range(2):
        for batch in DataLoader(ds, batch_size=2, collate_fn=collate_semantic):
            assert batch["image"].shape[0] == 2  # the bad sample is replaced, batches keep their size
            log.update(batch.get("bad_samples", ()))
        assert "1 bad samples skipped this epoch" in log.end_epoch()
    err = capsys.readouterr().err
    assert err.count(str(bad)) == 2  # once by the dataset's own log, once by the loop's log; not per epoch
    assert list(ds.bad_samples.reasons) == [str(bad)] and "truncated" in ds.bad_samples.reasons[str(bad)]


def test_skip_at_construction_drops_and_reports(tmp_path, layouts):
    layouts.write_folder(tmp_path, n=3)
    (tmp_path / "masks" / "img_2.png").unlink()
    ds = build_dataset("folder", root=tmp_path, num_classes=4, on_bad_sample="skip")
    assert len(ds) == 2 and str(tmp_path / "images" / "img_2.png") in ds.bad_samples.reasons


def test_worker_error_names_the_sample(tmp_path, layouts):
    layouts.write_folder(tmp_path)
    bad = tmp_path / "images" / "img_2.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    ds = build_dataset("folder", root=tmp_path, num_classes=4, check_files=False)
    loader = DataLoader(ds, batch_size=1, num_workers=1, collate_fn=collate_semantic)
    with pytest.raises(BadSampleError) as e:
        list(loader)
    assert _named(e, bad) and "sample 2" in str(e.value)


def test_coco_image_listed_but_missing(tmp_path, layouts):
    layouts.write_coco(tmp_path)
    gone = tmp_path / "val2017" / "000000000285.jpg"
    gone.unlink()
    with pytest.raises(BadSampleError) as e:
        build_dataset("coco", root=tmp_path, split="val")
    assert _named(e, gone) and "does not exist" in str(e.value)
    ds = build_dataset("coco_semantic", root=tmp_path, split="val", on_bad_sample="skip")
    assert len(ds) == 2 and str(gone) in ds.bad_samples.reasons


def test_jpeg_with_trailer_after_end_marker_is_not_called_truncated(tmp_path, layouts):
    layouts.write_folder(tmp_path)
    path = tmp_path / "images" / "img_1.jpg"
    clean = np.asarray(Image.open(path).convert("RGB"))
    path.write_bytes(path.read_bytes() + b"TRAILER" * 40)
    ds = build_dataset("folder", root=tmp_path, num_classes=4)
    assert np.array_equal(ds.load_raw(1)[0], clean)


@pytest.mark.parametrize("mapping", [None, {0: 0, 1: 1, 2: 2, 7: 255}])
def test_label_table_maps_like_numpy_indexing_and_rejects_unknown_values(mapping):
    from segkit.datasets.bad_samples import BadSampleError
    from segkit.datasets.label_tables import LabelTable

    table = LabelTable(3, mapping, ignore_index=255)
    rng = np.random.default_rng(0)
    allowed = np.array([0, 1, 2, 255] + ([7] if mapping else []), np.uint8)
    for values in (allowed[:3], allowed):  # classes only (the identity fast path), then with ignored values
        mask = rng.choice(values, size=(9, 11)).astype(np.uint8)
        expected = np.array([mapping.get(v, 255) if mapping else v for v in range(256)], np.uint8)[mask]
        np.testing.assert_array_equal(table(mask, "m.png"), expected)
    bad = mask.copy()
    bad[4, 5] = 3
    with pytest.raises(BadSampleError, match=r"m\.png: label values \[3\]"):
        table(bad, "m.png")
