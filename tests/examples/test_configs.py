"""The shipped configs: every model key is a real argument, even where the builder takes ``**options``."""

import inspect
from pathlib import Path

import pytest
import segmentation_models_pytorch as smp
from torchvision.models.detection import MaskRCNN

from segkit.config import load_config
from segkit.models import MODELS

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_model_keys_are_builder_or_torchvision_arguments(path):
    cfg = load_config(path)  # names and dataset keys are checked here (a placeholder root is fine)
    builder = inspect.signature(MODELS.get(cfg.model.name)).parameters
    accepted = {n for n, p in builder.items() if p.kind is not inspect.Parameter.VAR_KEYWORD}
    # Builders with **kwargs pass them to their library's class: check against that signature.
    library = {"mask_rcnn": MaskRCNN, "unet": smp.Unet, "deeplabv3plus": smp.DeepLabV3Plus}
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in builder.values()):
        assert cfg.model.name in library, f"add {cfg.model.name}'s library class to this test"
        accepted |= set(inspect.signature(library[cfg.model.name]).parameters)
    assert set(cfg.model.params) <= accepted, sorted(set(cfg.model.params) - accepted)
    if cfg.model.name == "mask_rcnn":
        assert cfg.train.task == "instance" and cfg.train.monitor in (None, "segm_ap", "bbox_ap")


def test_recipes_live_in_configs():
    root = CONFIGS[0].parent
    assert not (root / "recipes").exists()
    assert {p.name for p in CONFIGS} >= {"coco_maskrcnn.yaml", "shapes_maskrcnn.yaml", "voc_deeplabv3plus.yaml"}
