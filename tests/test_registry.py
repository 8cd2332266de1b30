"""The generic Registry: registration, lookup errors with suggestions, duplicates, names, where."""

import pytest

from segkit import DATASETS, LOSSES, MODELS
from segkit.registry import Registry, UnknownNameError


def make_registry():
    reg = Registry("widgets")

    @reg.register("alpha", "a")
    class Alpha:
        """An alpha widget."""

        def __init__(self, size: int = 1):
            self.size = size

    @reg.register("beta")
    def beta(size: int = 2):
        """A beta widget."""
        return ("beta", size)

    return reg, Alpha


def test_build_equals_direct_call():
    reg, Alpha = make_registry()
    built = reg.build("alpha", size=5)
    assert isinstance(built, Alpha) and built.size == 5
    assert reg.build("beta", size=3) == ("beta", 3)
    assert reg.get("a") is Alpha


def test_unknown_name_suggests_closest_and_lists_all():
    reg, _ = make_registry()
    with pytest.raises(KeyError) as info:
        reg.get("alpah")
    msg = str(info.value)
    assert "'alpha'" in msg and "Did you mean" in msg
    assert "a, alpha, beta" in msg
    assert isinstance(info.value, UnknownNameError)


def test_unknown_name_without_close_match_lists_all():
    reg, _ = make_registry()
    with pytest.raises(KeyError) as info:
        reg.build("zzzzzz")
    assert "Did you mean" not in str(info.value)
    assert "Known widgets: a, alpha, beta" in str(info.value)


def test_duplicate_name_is_an_error_naming_the_owner():
    reg, _ = make_registry()
    with pytest.raises(ValueError, match="already registered by .*Alpha"):

        @reg.register("alpha")
        class Other:
            pass

    with pytest.raises(ValueError, match="'beta' is already registered"):
        reg.register("new", "beta")(lambda: None)
    assert "new" not in reg  # a failed registration leaves nothing behind


def test_names_pattern_and_where():
    reg, _ = make_registry()
    assert reg.names() == ["a", "alpha", "beta"]
    assert reg.names("b*") == ["beta"]
    assert reg.where("beta").endswith("make_registry.<locals>.beta")


def test_builtin_registries_are_populated_without_extra_imports():
    assert "unet" in MODELS.names()
    assert "ce" in LOSSES.names()
    assert "shapes" in DATASETS.names()
