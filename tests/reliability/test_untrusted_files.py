"""Untrusted files: a checkpoint that would run code is refused, another architecture is a report, configs are data."""

from __future__ import annotations

import pickle
import re

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from segkit import Trainer
from segkit.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from segkit.cli import main
from segkit.config import ConfigError, load_config
from segkit.inference import Predictor
from segkit.models import build_model
from tests.engine._nets import TinyNet


class _Payload:
    """Unpickling this object runs ``exec`` (creates a marker file): what a malicious checkpoint does."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').close()",))


@pytest.fixture
def evil_checkpoint(tmp_path):
    marker = tmp_path / "code_ran"
    path = tmp_path / "evil.pt"
    good = build_model("segnet", num_classes=2, base_width=4).state_dict()
    state = {"format": "segkit-checkpoint", "model": good, "epoch": 0, "global_step": 1, "hook": _Payload(marker)}
    state["config"] = {"model": {"name": "segnet", "base_width": 4, "num_classes": 2}}
    torch.save(state, path)
    # Positive control: a plain (unsafe) torch.load of this file does run the payload.
    torch.load(path, weights_only=False)
    assert marker.exists()
    marker.unlink()
    return path, marker


def test_a_pickle_that_would_run_code_is_refused_everywhere(tmp_path, evil_checkpoint, tiny_shapes, capsys):
    path, marker = evil_checkpoint
    with pytest.raises(CheckpointError, match=re.escape(f"refused to load {path}") + ".*weights_only=True"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="refused to load"):
        Predictor.from_checkpoint(path, device="cpu")
    with pytest.raises(CheckpointError, match="refused to load"):
        build_model("segnet", num_classes=2, base_width=4, weights=str(path))
    trainer = Trainer(TinyNet(), "ce", tiny_shapes("train", 4, 24), epochs=1, batch_size=2, out_dir=tmp_path / "r")
    with pytest.raises(CheckpointError, match="refused to load"):
        trainer.fit(resume=path)
    image = tmp_path / "photo.png"  # predict checks its inputs first: give it one to reach the checkpoint
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
    for argv in (
        ["evaluate", "--checkpoint", str(path)],
        ["predict", "--checkpoint", str(path), str(image), "--out", str(tmp_path / "o")],
        ["export", "--checkpoint", str(path), "--out", str(tmp_path / "m.onnx")],
    ):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert f"refused to load {path}" in err and "Traceback" not in err
    assert not marker.exists()  # the code never ran


def test_a_pickle_with_a_global_inside_a_plain_state_dict_is_refused(tmp_path):
    marker = tmp_path / "code_ran"
    path = tmp_path / "plain.pth"
    with open(path, "wb") as fh:  # not even a torch zip file: a bare pickle, as old .pth files are
        pickle.dump({"weight": _Payload(marker)}, fh, protocol=2)
    with pytest.raises(CheckpointError, match="refused to load|truncated or corrupt"):
        load_checkpoint(path)
    assert not marker.exists()


def test_checkpoint_of_another_architecture_gives_a_mismatch_report(tmp_path, tiny_shapes, capsys):
    other = build_model("segnet", num_classes=3, base_width=4)
    path = save_checkpoint({"model": other.state_dict(), "epoch": 0, "global_step": 1}, tmp_path / "other.pt")
    trainer = Trainer(TinyNet(), "ce", tiny_shapes("train", 4, 24), epochs=1, batch_size=2, out_dir=tmp_path / "r")
    with pytest.raises(CheckpointError) as info:
        trainer.fit(resume=path)
    text = str(info.value)
    assert f"{path} does not fit this model" in text
    assert "keys missing from the checkpoint, first: body.0.weight" in text and "unexpected keys" in text
    # The same file through the CLI: one line naming the file and the first shape mismatches, exit 2.
    cfg = {
        "model": {"name": "segnet", "base_width": 4},
        "data": {"name": "shapes", "image_size": 32, "val": {"split": "val", "num_images": 1}},
        "train": {"device": "cpu"},
    }
    cfg_path = tmp_path / "cfg.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    assert main(["evaluate", "--checkpoint", str(path), "--config", str(cfg_path)]) == 2
    err = capsys.readouterr().err
    assert re.search(r"does not fit this model .*\d+ shape mismatches, first: model\.decoder\.\d+\.\d+\.weight", err)
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "text",
    [
        "model: !!python/object/apply:os.system ['touch {marker}']\n",
        "model: !!python/object/new:subprocess.Popen [['touch', '{marker}']]\n",
        "model: {{name: unet}}\ntrain: !!python/name:os.system\n",
    ],
)
def test_yaml_tags_that_construct_objects_never_run(tmp_path, text):
    marker = tmp_path / "code_ran"
    path = tmp_path / "evil.yaml"
    path.write_text(text.format(marker=marker))
    with pytest.raises(ConfigError, match=re.escape(str(path)) + ": not valid YAML"):
        load_config(path)
    assert not marker.exists()


def test_yaml_tag_in_a_command_line_override_is_refused(tmp_path, capsys):
    marker = tmp_path / "code_ran"
    cfg = {"model": {"name": "segnet"}, "data": {"name": "shapes"}}
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    override = f"train.lr=!!python/object/apply:os.system ['touch {marker}']"
    with pytest.raises(ConfigError, match=re.escape(f"{path}: override ") + ".*train.lr=.*not valid YAML"):
        load_config(path, [override])
    assert main(["train", "--config", str(path), "--set", override]) == 2
    assert "not valid YAML" in capsys.readouterr().err
    assert not marker.exists()


@pytest.mark.parametrize(
    "raw, fragment",
    [
        ("- a list\n- not a mapping\n", "a config must be a mapping of blocks, got list"),
        ("model: unet\ndata: shapes\ntrain: [1, 2]\n", "train"),
        ("model: {name: 3}\ndata: shapes\n", "model.name"),
        ("model: unet\ndata: shapes\ntrain: {epochs: 1, epochs: 2}\n", None),
    ],
)
def test_config_files_with_wrong_shapes_name_the_key(tmp_path, raw, fragment):
    path = tmp_path / "cfg.yaml"
    path.write_text(raw)
    if fragment is None:  # a duplicate key: YAML keeps the last value (documented, like every YAML loader)
        assert load_config(path).train.epochs == 2
        return
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(path) in str(info.value) and fragment in str(info.value), str(info.value)
