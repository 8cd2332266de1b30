"""From a folder to a model on the command line: ``segkit inspect`` and ``segkit train --data`` on fresh folders."""

import re

import numpy as np
import pytest
import yaml
from PIL import Image

from segkit.cli import main

SIZES = [(72, 96), (64, 80), (90, 70), (64, 64), (80, 100), (70, 90), (96, 72), (60, 84)]


def write_photo_folder(root, sizes=SIZES, seed=0):
    """JPEG photos of varied sizes (dark noisy ground, a bright disc = class 1, a grey bar = class 2), PNG masks."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i, (h, w) in enumerate(sizes):
        yy, xx = np.mgrid[:h, :w]
        mask = np.zeros((h, w), np.uint8)
        cy, cx, r = rng.integers(h // 4, 3 * h // 4), rng.integers(w // 4, 3 * w // 4), rng.integers(8, 16)
        mask[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = 1
        mask[: h // 6, :] = 2
        image = rng.integers(0, 60, (h, w, 3)).astype(np.uint8)
        image[mask == 1] = (230, 220, 40)
        image[mask == 2] = (128, 128, 128)
        Image.fromarray(image).save(root / "images" / f"photo_{i}.jpg", quality=92)
        Image.fromarray(mask).save(root / "masks" / f"photo_{i}.png")
    return root


def test_inspect_folder_without_split_file(tmp_path, capsys):
    root = write_photo_folder(tmp_path / "data")
    picture = tmp_path / "samples.png"
    assert main(["inspect", "--dataset", "folder", "--root", str(root), "--picture", str(picture)]) == 0
    out = capsys.readouterr().out
    masks = [np.asarray(Image.open(p)) for p in sorted((root / "masks").iterdir())]
    pixels = sum(np.bincount(m.ravel(), minlength=3) for m in masks)
    present = sum(np.where(np.bincount(m.ravel(), minlength=3) > 0, m.size, 0) for m in masks)
    assert f"{len(SIZES)} images" in out and f"{len(set(SIZES))} distinct" in out
    rows = {int(line.split()[0]): line.split() for line in out.splitlines() if re.match(r"\s+\d+\s+class_", line)}
    assert [int(rows[c][2]) for c in range(3)] == pixels.tolist()
    # Median-frequency balancing (Eigen & Fergus): freq = pixels / pixels of the images holding the class.
    freq = pixels / present
    expected = np.median(freq) / freq
    assert [float(rows[c][5]) for c in range(3)] == pytest.approx(expected.tolist(), abs=1e-3)
    images = np.concatenate([np.asarray(Image.open(p)).reshape(-1, 3) for p in sorted((root / "images").iterdir())])
    mean_line = next(line for line in out.splitlines() if line.startswith("per-channel mean"))
    mean = [float(v) for v in mean_line.split("[")[1].rstrip("]").split(",")]
    assert mean == pytest.approx(images.mean(0).tolist(), abs=0.5)  # two JPEG decoders: +-1 per pixel at most
    assert "different image sizes" in out  # the varied sizes are said, with the remedy
    with Image.open(picture) as im:
        assert im.format == "PNG" and im.width > 200


def test_inspect_markdown_table(tmp_path, capsys):
    root = write_photo_folder(tmp_path / "data", sizes=SIZES[:3])
    assert main(["inspect", "--dataset", "folder", "--root", str(root), "--markdown", "--no-picture"]) == 0
    out = capsys.readouterr().out
    assert "| id | class | pixels | share | images | weight |" in out
    assert len([line for line in out.splitlines() if line.startswith("| ")]) == 1 + 3 + 1  # header, classes, ignored


def test_train_from_a_folder_in_one_command(tmp_path, capsys):
    root = write_photo_folder(tmp_path / "data")
    run = tmp_path / "run"
    args = ["train", "--data", str(root), "--epochs", "1", "--image-size", "48", "--encoder", "resnet18"]
    assert main([*args, "--batch-size", "4", "--out", str(run)]) == 0
    out = capsys.readouterr().out
    assert (run / "best.pt").is_file() and (run / "last.pt").is_file()
    for name in ("curves.png", "confusion.png", "worst.png"):
        assert (run / "report" / name).is_file(), out
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["model"]["name"] == "unet" and cfg["model"]["num_classes"] == 3
    assert cfg["data"]["train"]["transforms"]["crop_size"] == 48
    train = (run / "splits" / "train.txt").read_text().split()
    val = (run / "splits" / "val.txt").read_text().split()
    assert len(train) + len(val) == len(SIZES) and not set(train) & set(val) and len(val) == 1
    # The written config reruns as is.
    again = ["train", "--config", str(run / "config.yaml"), "--set", f"train.out_dir={tmp_path / 'again'}"]
    assert main(again) == 0
    assert (tmp_path / "again" / "best.pt").is_file()


def test_train_data_uses_train_and_val_subfolders(tmp_path):
    write_photo_folder(tmp_path / "data" / "train", sizes=SIZES[:4])
    write_photo_folder(tmp_path / "data" / "val", sizes=SIZES[4:6], seed=1)
    run = tmp_path / "run"
    args = ["train", "--data", str(tmp_path / "data"), "--epochs", "1", "--image-size", "48", "--encoder", "resnet18"]
    assert main([*args, "--out", str(run)]) == 0
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["data"]["train"]["split"] == "train" and cfg["data"]["val"]["split"] == "val"
    assert not (run / "splits").exists()


TRIAL_SIZES = [(60, 80), (72, 96), (90, 70), (120, 96), (64, 64), (80, 100), (100, 84), (96, 120)]
COLOURS = [(0, 0, 0), (200, 30, 30), (30, 200, 60)]


def write_noise_folder(root, save_mask, sizes=TRIAL_SIZES, seed=0):
    """Noise photos of varied sizes with a bright disc (class 1) and a band (class 2); masks written by
    ``save_mask(path_without_suffix, class_map)``. No split: ``segkit train --data`` draws one."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i, (h, w) in enumerate(sizes):
        yy, xx = np.mgrid[:h, :w]
        classes = np.zeros((h, w), np.uint8)
        classes[(yy - h // 2) ** 2 + (xx - w // 2) ** 2 < (min(h, w) // 4) ** 2] = 1
        classes[: h // 8, :] = 2
        image = rng.integers(0, 80, (h, w, 3)).astype(np.uint8)
        image[classes > 0] += 150
        Image.fromarray(image).save(root / "images" / f"img_{i}.jpg", quality=90)
        save_mask(root / "masks" / f"img_{i}", classes)
    return root


def _train_args(root, out):
    return ["train", "--data", str(root), "--epochs", "1", "--image-size", "48", "--encoder", "resnet18",
            "--batch-size", "4", "--out", str(out)]  # fmt: skip


def _advertised_set(err):
    """The ``--set '...'`` the error message tells the user to add (as the shell passes it)."""
    found = re.findall(r"--set '([^']+)'", err)
    assert found, err
    return found[0]


def test_train_data_jpeg_masks_fail_then_train_with_the_advertised_set(tmp_path, capsys):
    def save_jpeg(path, classes):
        Image.fromarray(np.where(classes > 0, 255, 0).astype(np.uint8)).save(f"{path}.jpg", quality=75)

    root = write_noise_folder(tmp_path / "data", save_jpeg)
    assert main(_train_args(root, tmp_path / "first")) == 2
    err = capsys.readouterr().err
    assert "JPEG mask" in err and "lossy compression" in err
    remedy = _advertised_set(err)
    assert remedy == "data.mask_values=[0,255]"
    assert main([*_train_args(root, tmp_path / "run"), "--set", remedy]) == 0
    out = capsys.readouterr().out
    assert "lossy (JPEG) masks: every pixel snapped" in out
    cfg = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert cfg["data"]["mask_values"] == [0, 255] and cfg["model"]["num_classes"] == 2
    assert (tmp_path / "run" / "best.pt").is_file()
    assert out.count("share of pixels per class") == 1  # the folder's encoding block once, not per split


def test_train_data_colour_masks_fail_then_train_with_the_advertised_palette(tmp_path, capsys):
    def save_rgb(path, classes):
        Image.fromarray(np.asarray(COLOURS, np.uint8)[classes]).save(f"{path}.png")

    root = write_noise_folder(tmp_path / "data", save_rgb)
    assert main(_train_args(root, tmp_path / "first")) == 2
    err = capsys.readouterr().err
    assert "RGB colour masks, but no palette=" in err
    remedy = _advertised_set(err)
    assert remedy.startswith("data.palette=[[0,0,0],")
    assert sorted(map(tuple, yaml.safe_load(remedy.split("=", 1)[1]))) == sorted(COLOURS)
    assert main([*_train_args(root, tmp_path / "run"), "--set", remedy]) == 0
    cfg = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert cfg["model"]["num_classes"] == 3


def test_train_data_gapped_grey_masks_fail_then_train_with_the_advertised_values(tmp_path, capsys):
    def save_grey(path, classes):
        Image.fromarray((classes * 85).astype(np.uint8)).save(f"{path}.png")

    root = write_noise_folder(tmp_path / "data", save_grey, sizes=TRIAL_SIZES[:4])
    assert main(_train_args(root, tmp_path / "first")) == 2
    remedy = _advertised_set(capsys.readouterr().err)
    assert remedy == "data.mask_values=[0,85,170]"
    assert main([*_train_args(root, tmp_path / "run"), "--set", remedy]) == 0


def test_train_data_with_a_val_folder_of_negative_images_trains(tmp_path):
    write_photo_folder(tmp_path / "data" / "train", sizes=SIZES[:4])
    write_photo_folder(tmp_path / "data" / "val", sizes=SIZES[4:6], seed=1)
    for mask in (tmp_path / "data" / "val" / "masks").iterdir():  # defect detection: images without defects
        Image.fromarray(np.zeros_like(np.asarray(Image.open(mask)))).save(mask)
    run = tmp_path / "run"
    assert main(_train_args(tmp_path / "data", run)) == 0
    assert yaml.safe_load((run / "config.yaml").read_text())["model"]["num_classes"] == 3
