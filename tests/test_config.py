"""Config loading: flat YAML blocks, overrides, and the errors that name the key."""

import pytest
import yaml

from segkit.config import ConfigError, apply_overrides, config_from_dict, config_to_dict, load_config

BASE = {
    "model": {"name": "unet", "encoder": "resnet18", "num_classes": 4},
    "loss": {"name": "ce"},
    "data": {"name": "shapes", "image_size": 32, "train": {"split": "train", "num_images": 8}, "val": {"split": "val"}},
    "train": {"epochs": 2, "lr": 0.01},
}


def write(tmp_path, raw, name="cfg.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw))
    return path


def test_load_flat_blocks(tmp_path):
    cfg = load_config(write(tmp_path, BASE))
    assert cfg.model.name == "unet" and cfg.model.params == {"encoder": "resnet18", "num_classes": 4}
    assert cfg.data.split_params("train") == {"image_size": 32, "split": "train", "num_images": 8}
    assert cfg.train.epochs == 2 and cfg.train.lr == 0.01
    assert cfg.train.batch_size == 8  # default from TrainConfig


def test_overrides_set_nested_values_with_yaml_types(tmp_path):
    cfg = load_config(
        write(tmp_path, BASE), ["train.lr=0.5", "model.encoder=resnet34", "data.train.num_images=3", "train.amp=null"]
    )
    assert cfg.train.lr == 0.5 and isinstance(cfg.train.lr, float)
    assert cfg.model.params["encoder"] == "resnet34"
    assert cfg.data.split_params("train")["num_images"] == 3
    assert cfg.train.amp is None


def test_int_is_accepted_for_float():
    cfg = config_from_dict(apply_overrides(BASE, ["train.lr=1"]))
    assert cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float)


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("train.epochz=3", "train.epochz: unknown key (did you mean 'epochs'?)"),
        ("train.epochs=three", "train.epochs: expected int, got str"),
        ("train.epochs=2.5", "train.epochs: expected int, got float"),
        ("train.lr=true", "train.lr: expected float, got bool"),
        ("model.encodr=resnet18", "model.encodr: unknown key (did you mean 'encoder'?)"),
        ("model.name=unetx", "model.name: no entry named 'unetx' in models. Did you mean 'unet'"),
        ("data.image_sise=3", "data (train split).image_sise: unknown key"),
        ("loss.name=cee", "loss.name: no entry named 'cee'"),
    ],
)
def test_errors_name_the_key(tmp_path, override, fragment):
    path = write(tmp_path, BASE)
    with pytest.raises(ConfigError) as info:
        load_config(path, [override])
    assert fragment in str(info.value)
    assert str(path) in str(info.value)


def test_unknown_top_level_block_and_missing_blocks():
    with pytest.raises(ConfigError, match="modle: unknown key"):
        config_from_dict({**BASE, "modle": {}})
    with pytest.raises(ConfigError, match="data: missing block"):
        config_from_dict({"model": BASE["model"]})


def test_override_without_equals_sign():
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        apply_overrides(BASE, ["train.lr"])


def test_yaml_object_tags_are_refused(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("model: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)


def test_missing_file():
    with pytest.raises(FileNotFoundError, match="config file not found: nope.yaml"):
        load_config("nope.yaml")


def test_round_trip_through_dict():
    cfg = config_from_dict(BASE)
    again = config_from_dict(config_to_dict(cfg))
    assert again == cfg


def test_repo_configs_load():
    from pathlib import Path

    configs = sorted((Path(__file__).parents[1] / "configs").glob("*.yaml"))
    assert configs, "configs/ is empty"
    for path in configs:
        load_config(path)
