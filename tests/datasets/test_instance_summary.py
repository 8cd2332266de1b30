"""``segkit inspect`` on instance data (COCO files): instances, crowd regions and sizes per class, with the
file's category ids; the semantic class table (pixels per class) does not apply and used to crash."""

import shutil

import numpy as np

from segkit.cli import main
from segkit.datasets import build_dataset
from segkit.datasets.instance_summary import instance_stats


def _flat_copy(tmp_path, layouts):
    """The COCO fixture moved to a user's layout: photos/ and labels.json, read with ann_file and image_dir."""
    layouts.write_coco(tmp_path / "coco")
    shutil.copytree(tmp_path / "coco" / "val2017", tmp_path / "mine" / "photos")
    shutil.copy(tmp_path / "coco" / "annotations" / "instances_val2017.json", tmp_path / "mine" / "labels.json")
    return tmp_path / "mine"


def test_instance_stats_count_crowd_apart_and_empty_images(tmp_path, layouts):
    root = _flat_copy(tmp_path, layouts)
    data = build_dataset("coco", root=root, ann_file=root / "labels.json", image_dir=root / "photos")
    stats = instance_stats(data)
    # labels: 1 person (id 1), 2 dog (id 18), 3 toothbrush (id 90, its one annotation is a crowd RLE);
    # the person with a zero-size box is dropped as the dataset drops it; the third image has no annotation.
    assert stats.instances.tolist() == [0, 1, 2, 0]
    assert stats.crowd.tolist() == [0, 0, 0, 1]
    assert stats.images.tolist() == [0, 1, 2, 0]
    assert stats.empty == 1 and stats.num_images == 3
    assert stats.sizes_by_area.sum(1).tolist() == stats.instances.tolist()
    assert np.all(stats.sizes_by_area[:, 0] == stats.instances)  # the fixture's objects are all small (< 32x32)


def test_cli_inspect_reads_a_coco_file_in_any_layout(tmp_path, layouts, capsys):
    root = _flat_copy(tmp_path, layouts)
    picture = tmp_path / "samples.png"
    args = ["inspect", "--dataset", "coco", "--root", str(root), "--set", "ann_file=" + str(root / "labels.json")]
    assert main([*args, "--set", "image_dir=" + str(root / "photos"), "--picture", str(picture)]) == 0
    out = capsys.readouterr().out
    assert "3 images, 3 classes + background, 3 instances and 1 crowd regions" in out
    assert "1 images without instances" in out
    rows = {line.split()[1]: line.split() for line in out.splitlines() if line.split()[:1] in (["1"], ["2"], ["3"])}
    # label, class, category_id, instances, small, medium, large, crowd, images
    assert rows["person"] == ["1", "person", "1", "1", "1", "0", "0", "0", "1"]
    assert rows["dog"] == ["2", "dog", "18", "2", "2", "0", "0", "0", "2"]
    assert rows["toothbrush"] == ["3", "toothbrush", "90", "0", "0", "0", "0", "1", "0"]
    assert "toothbrush; their AP is undefined" in out
    assert picture.is_file() and picture.stat().st_size > 0
    assert main([*args, "--set", "image_dir"]) == 2
    assert "--set expects KEY=VALUE" in capsys.readouterr().err
