"""`segkit evaluate` scores what the checkpoint's model saw (issue 26 items 2 and 3): the checkpoint's
normalisation wins over statistics the config would compute, and any split is scored with the validation
transforms, deterministically."""

import numpy as np
import pytest
import tifffile
import torch
import yaml
from PIL import Image

from segkit.cli import main
from tests.test_cli import _printed_table


def _write_bands(root, scale, seed, count=4, size=(32, 40)):
    """images/*.tif (4-band uint16 at band levels times ``scale``) + masks/*.png (0..2) tied to the bands."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(count):
        mask = rng.integers(0, 3, size, dtype=np.uint8)
        levels = np.array([800.0, 3000.0, 1200.0, 150.0]) * scale
        x = rng.normal(levels, levels / 10, size=(*size, 4)) + mask[..., None] * levels / 4
        tifffile.imwrite(root / "images" / f"t{i}.tif", x.clip(0, 65535).astype(np.uint16), photometric="minisblack",
                         planarconfig="contig")  # fmt: skip
        Image.fromarray(mask).save(root / "masks" / f"t{i}.png")


def _mean_iou(out):
    return _printed_table(out)[0]["mean"][0]


def test_evaluate_with_the_users_config_keeps_the_checkpoints_normalisation(tmp_path, capsys):
    # The val folder's bands are 3x brighter: its own statistics (what the config computes for it alone) differ
    # from the training ones the model was trained and validated with.
    _write_bands(tmp_path / "train", 1.0, 0)
    _write_bands(tmp_path / "val", 3.0, 1)
    cfg = {
        "model": {
            "name": "unet",
            "encoder": "resnet18",
            "decoder_channels": [16, 16, 8, 8, 8],
            "encoder_weights": None,
        },
        "loss": "ce",
        "data": {"name": "folder", "train": {"root": str(tmp_path / "train")}, "val": {"root": str(tmp_path / "val")}},
        "train": {"epochs": 2, "batch_size": 4, "lr": 0.01, "out_dir": str(tmp_path / "run")},
    }
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(cfg))
    assert main(["train", "--config", str(config)]) == 0
    best = torch.load(tmp_path / "run" / "best.pt", weights_only=True)
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(tmp_path / "run" / "best.pt"), "--config", str(config)]) == 0
    assert _mean_iou(capsys.readouterr().out) == pytest.approx(best["metrics"]["val/miou"], abs=5e-5)

    # Statistics given explicitly for the split that disagree with the model's: an error naming both.
    capsys.readouterr()
    code = main(["evaluate", "--checkpoint", str(tmp_path / "run" / "best.pt"), "--config", str(config),
                 "--set", "data.val.mean=[1,1,1,1]", "--set", "data.val.std=[2,2,2,2]"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "mean=/std= give" in err and "trained with" in err and "best.pt" in err


def test_evaluate_on_the_train_split_is_deterministic_and_unaugmented(tmp_path, capsys):
    cfg = {
        "model": {"name": "unet", "encoder": "resnet18", "decoder_channels": [16, 16, 8, 8, 8], "encoder_weights": None},
        "loss": "ce",
        "data": {
            "name": "shapes", "image_size": 32,
            "train": {"split": "train", "num_images": 8, "transforms": {"preset": "train", "crop_size": 24}},
            "val": {"split": "val", "num_images": 4},
        },
        "train": {"epochs": 1, "batch_size": 4, "out_dir": str(tmp_path / "run")},
    }  # fmt: skip
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(cfg))
    assert main(["train", "--config", str(config)]) == 0
    checkpoint = str(tmp_path / "run" / "best.pt")
    outs = []
    for _ in range(2):
        capsys.readouterr()
        assert main(["evaluate", "--checkpoint", checkpoint, "--split", "train"]) == 0
        outs.append(capsys.readouterr().out)
    assert outs[0] == outs[1]

    # The score of the whole 32x32 training images, predicted as validation does, by hand.
    from segkit.datasets import build_dataset
    from segkit.models import build_model

    model = build_model("unet", encoder="resnet18", decoder_channels=[16, 16, 8, 8, 8], num_classes=4)
    model.load_state_dict(torch.load(checkpoint, weights_only=True)["model"])
    data = build_dataset("shapes", split="train", num_images=8, image_size=32)
    with torch.no_grad():
        pred = model.eval()(torch.stack([data[i]["image"] for i in range(8)])).argmax(1).numpy().ravel()
    target = np.stack([data[i]["mask"].numpy() for i in range(8)]).ravel()
    cm = np.bincount(4 * target + pred, minlength=16).reshape(4, 4)
    assert _printed_table(outs[0])[1] == pytest.approx(np.trace(cm) / cm.sum(), abs=1e-4)  # pixel accuracy
    assert "(train, 8 images)" in outs[0]
