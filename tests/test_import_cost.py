"""`import segkit` leaves the heavy optional libraries unimported until a feature needs them (speed: bench/import_time.py)."""

import json
import subprocess
import sys

import pytest

# Each costs from a tenth of a second (cv2) to several seconds (smp with timm, torchvision with torch._dynamo).
LAZY = (
    "albumentations",
    "segmentation_models_pytorch",
    "timm",
    "torchvision",
    "torch._dynamo",
    "pycocotools",
    "matplotlib",
    "scipy",
    "tensorboard",
    "mlflow",
    "neptune",
    "onnx",
    "onnxruntime",
)


def _modules_after(code: str) -> set[str]:
    """The names in sys.modules after running ``code`` in a fresh interpreter."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return set(json.loads(out.splitlines()[-1]))


def test_import_segkit_leaves_heavy_optional_libraries_unimported():
    loaded = _modules_after("import segkit\nsegkit.Trainer, segkit.build_model, segkit.build_dataset")
    assert "segkit.models.smp" in loaded and "segkit.datasets.transforms" in loaded  # the registries are filled
    assert sorted(m for m in LAZY if m in loaded) == []


@pytest.mark.slow
def test_building_an_smp_model_and_the_train_transforms_imports_them():
    # The other half of the contract: the libraries still arrive when a feature uses them.
    loaded = _modules_after(
        "from segkit import build_model\nfrom segkit.datasets.transforms import train_transforms\n"
        "build_model('fpn', num_classes=2, encoder='resnet18')\ntrain_transforms(32)"
    )
    assert {"segmentation_models_pytorch", "albumentations"} <= loaded
