"""segkit inspect: per-class pixel counts against a bincount of the stored labels."""

import re

import numpy as np
from PIL import Image

from segkit.cli import main


def test_inspect_counts_match_stored_labels(tmp_path, layouts, capsys):
    names = layouts.write_camvid_segnet(tmp_path, split="val", n=3)
    counts = sum(np.bincount(np.asarray(Image.open(tmp_path / "valannot" / n)).ravel(), minlength=12) for n in names)
    assert main(["inspect", "--dataset", "camvid", "--root", str(tmp_path), "--split", "val"]) == 0
    out = capsys.readouterr().out
    assert "3 images" in out
    table = [line.split() for line in out.splitlines() if re.match(r"\s*(\d+|-)\s+\S+\s+\d+\s", line)]
    rows = {cells[1]: int(cells[2]) for cells in table}
    assert rows["sky"] == counts[0] and rows["bicyclist"] == counts[10] and rows["ignored"] == counts[11]
