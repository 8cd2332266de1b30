"""`segkit predict` writes masks the way the training masks were stored: 0/255, their palette, their colours.

Each test writes a folder in the real on-disk form, trains one epoch of a tiny model on it with the Trainer (the
checkpoint records how the masks were stored), predicts an image of another size with `segkit predict`, and checks
the written file against `Predictor`'s class indices mapped through the set's own values (a table written here,
not by segkit).
"""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from segkit.checkpoint import load_checkpoint
from segkit.cli import main
from segkit.inference import Predictor, encode_mask, read_image_list

COLOURS = [[0, 0, 0], [220, 30, 30], [30, 30, 220]]  # an RGB colour-mask set's classes
# A palette-PNG set's own palette (not segkit's default one): 0 black, 1 orange, 2 teal, then greys.
PNG_PALETTE = [[0, 0, 0], [250, 140, 0], [0, 128, 128]] + [[v, v, v] for v in range(3, 256)]


def _scene(h, w, rng):
    """A noisy image with a bright disc (class 1) and a dark bar (class 2) covering much of it."""
    yy, xx = np.mgrid[:h, :w]
    classes = np.zeros((h, w), np.uint8)
    classes[(yy - h // 2) ** 2 + (xx - w // 2) ** 2 < (min(h, w) // 3) ** 2] = 1
    classes[: h // 4] = 2
    image = rng.integers(0, 50, (h, w, 3)).astype(np.uint8)
    image[classes == 1] += np.uint8(180)
    image[classes == 2, 2] += np.uint8(150)
    return image, classes


def write_set(root: Path, encoding: str, n: int = 6, seed: int = 0) -> Path:
    """images/*.png + masks/*.png, masks stored as `encoding`: binary (0/255 'L'), palette ('P') or rgb."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(n):
        image, classes = _scene(40 + 4 * i, 48, rng)
        if encoding == "binary":
            mask = Image.fromarray(np.where(classes == 1, 255, 0).astype(np.uint8), mode="L")
        elif encoding == "palette":
            mask = Image.fromarray(classes, mode="P")
            mask.putpalette(np.asarray(PNG_PALETTE, np.uint8).reshape(-1).tolist())
        else:
            mask = Image.fromarray(np.asarray(COLOURS, np.uint8)[classes], mode="RGB")
        Image.fromarray(image).save(root / "images" / f"scan_{i:02d}.png")
        mask.save(root / "masks" / f"scan_{i:02d}.png")
    return root


class PixelClassifier(torch.nn.Module):
    """A 1x1 convolution set by hand: class 1 where red + green are high (the disc), class 2 where blue
    exceeds red (the bar), else class 0. Trained here with a vanishing lr, so what it predicts is known."""

    def __init__(self, num_classes: int = 3, in_channels: int = 3) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(in_channels, num_classes, 1)
        weight = torch.zeros(num_classes, in_channels, 1, 1)
        bias = torch.zeros(num_classes)
        weight[1, 0], weight[1, 1] = 1.0, 1.0
        if num_classes > 2:
            weight[2, 2], weight[2, 0], bias[2] = 1.0, -1.0, -1.0
        with torch.no_grad():
            self.conv.weight.copy_(weight)
            self.conv.bias.copy_(bias)

    def forward(self, x):
        return self.conv(x)


@pytest.fixture
def pixel_model(monkeypatch):
    """Registered for the test only (the registry-driven model tests never see it)."""
    from segkit.models import MODELS

    monkeypatch.setitem(MODELS._entries, "_test_pixel_classifier", PixelClassifier)
    return "_test_pixel_classifier"


def _train(tmp_path: Path, encoding: str, model_name: str) -> Path:
    """One epoch of the Trainer on the folder, as `segkit train --data` runs it; returns best.pt."""
    from segkit import Trainer, build_dataset
    from segkit.models import build_model

    data = write_set(tmp_path / "data", encoding)
    palette = COLOURS if encoding == "rgb" else None
    dataset = build_dataset("folder", root=str(data), image_size=32, palette=palette, verbose=False)
    model = build_model(model_name, num_classes=dataset.num_classes)
    trainer = Trainer(model, "ce", dataset, dataset, epochs=1, batch_size=3, lr=1e-9, out_dir=tmp_path / "run")
    trainer.fit()
    return tmp_path / "run" / "best.pt"


# What each set's files hold per class, written here from the folders above (the independent reference).
STORED = {
    "binary": ("L", np.array([0, 255])),
    "palette": ("P", np.arange(3)),
    "rgb": ("RGB", np.asarray(COLOURS, np.uint8)),
}


@pytest.mark.parametrize("encoding", ["binary", "palette", "rgb"])
def test_predicted_masks_come_back_in_the_training_encoding(encoding, pixel_model, tmp_path, capsys):
    ckpt = _train(tmp_path, encoding, pixel_model)
    recorded = load_checkpoint(ckpt)["mask_format"]
    assert recorded["kind"] == {"binary": "grey", "palette": "palette", "rgb": "rgb"}[encoding]
    new = tmp_path / "new"
    new.mkdir()
    image, _ = _scene(37, 53, np.random.default_rng(7))  # another size than the 32 px crops and the set
    Image.fromarray(image).save(new / "field.png")
    out = tmp_path / "pred"
    assert main(["predict", "--checkpoint", str(ckpt), str(new), "--out", str(out), "--device", "cpu", "--quiet"]) == 0
    assert "like the training masks" in capsys.readouterr().out or encoding != "binary"
    classes = Predictor.from_checkpoint(ckpt, device="cpu").predict(new / "field.png")
    assert np.unique(classes).tolist() == list(range(len(STORED[encoding][1])))  # every class is written
    mode, table = STORED[encoding]
    with Image.open(out / "field_mask.png") as written:
        assert written.mode == mode and written.size == (53, 37)
        np.testing.assert_array_equal(np.asarray(written), table[classes])
        if encoding == "palette":  # the set's own palette, not segkit's default colours
            assert written.getpalette()[:9] == sum(PNG_PALETTE[:3], [])
    # --index-masks: class indices whatever the training encoding.
    assert main(["predict", "--checkpoint", str(ckpt), str(new), "--out", str(tmp_path / "idx"), "--index-masks"]) == 0
    with Image.open(tmp_path / "idx" / "field_mask.png") as written:
        assert written.mode == "P"
        np.testing.assert_array_equal(np.asarray(written), classes)


def test_predict_takes_a_split_list_of_stems_file_names_and_paths(pixel_model, tmp_path, capsys):
    ckpt = _train(tmp_path, "binary", pixel_model)
    data = tmp_path / "data"  # images/scan_XX.png and masks/scan_XX.png share their stems
    # As users keep them: a stem, a file name (what `segkit train --data` writes), a path, a comment, a blank line.
    (data / "val.txt").write_text("scan_01\nscan_03.png  # hard one\n\nimages/scan_04.png\n")
    out = tmp_path / "pred"
    assert main(["predict", "--checkpoint", str(ckpt), "--list", str(data / "val.txt"), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.glob("*_mask.png")) == [
        "scan_01_mask.png",
        "scan_03_mask.png",
        "scan_04_mask.png",
    ]
    assert read_image_list(data / "val.txt") == [data / "images" / f"scan_0{i}.png" for i in (1, 3, 4)]
    # A list kept elsewhere names the folder its names are relative to with --root.
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "val.txt").write_text("scan_02\n")
    assert read_image_list(tmp_path / "lists" / "val.txt", root=data) == [data / "images" / "scan_02.png"]
    capsys.readouterr()
    missing = ["predict", "--checkpoint", str(ckpt), "--list", str(tmp_path / "lists" / "val.txt"), "--out", str(out)]
    assert main(missing) == 2
    err = capsys.readouterr().err
    assert "1 of 1 names have no image" in err and "scan_02" in err and "--root" in err


def test_sixteen_bit_values_and_a_class_without_a_stored_value():
    classes = np.array([[0, 1], [2, 1]])
    written = encode_mask(classes, {"kind": "grey", "values": [0, 1000, 65535], "bits": 16})
    np.testing.assert_array_equal(np.asarray(written), [[0, 1000], [65535, 1000]])
    with pytest.raises(ValueError, match="--index-masks"):
        encode_mask(classes, {"kind": "grey", "values": [0, 255], "bits": 8})
