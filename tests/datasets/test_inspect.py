"""segkit inspect: per-class pixel counts against a bincount of the stored labels."""

import numpy as np
from PIL import Image

from segkit.cli import main


def test_inspect_counts_match_stored_labels(tmp_path, layouts, capsys):
    names = layouts.write_camvid_segnet(tmp_path, split="val", n=3)
    counts = sum(np.bincount(np.asarray(Image.open(tmp_path / "valannot" / n)).ravel(), minlength=12) for n in names)
    assert main(["inspect", "--dataset", "camvid", "--root", str(tmp_path), "--split", "val"]) == 0
    out = capsys.readouterr().out
    assert "3 images" in out
    rows = {line.split()[1]: int(line.split()[2]) for line in out.splitlines()[3:] if line.strip()}
    assert rows["sky"] == counts[0] and rows["bicyclist"] == counts[10] and rows["ignored"] == counts[11]
