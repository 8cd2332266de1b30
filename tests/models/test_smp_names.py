"""The smp architectures are registered by name without importing smp; the names must match smp's own classes."""

import segmentation_models_pytorch as smp

from segkit.models import MODELS
from segkit.models.smp import SMP_ARCHITECTURES, smp_class


def test_every_smp_name_is_registered_and_names_the_class_smp_maps_it_to():
    mapping = smp.MODEL_ARCHITECTURES_MAPPING  # smp's own name -> class table
    assert set(SMP_ARCHITECTURES) | {"unet"} <= set(MODELS.names())
    for name, (class_name, _) in SMP_ARCHITECTURES.items():
        assert mapping[name] is smp_class(class_name), name


def test_smp_architectures_left_out_are_the_known_ones():
    # A new smp architecture fails here until it is registered (or knowingly left out, with the reason).
    left_out = {"dpt": "takes only timm ViT encoders (tu-vit_*), not the resnet encoders the other builders default to"}
    assert set(smp.MODEL_ARCHITECTURES_MAPPING) - set(SMP_ARCHITECTURES) - {"unet"} == set(left_out)
