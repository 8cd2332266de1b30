"""Names moved by the engine's redesign still work and warn (issue 29: every public name works or warns once)."""

import importlib
import sys

import pytest


@pytest.mark.parametrize(
    ("module", "name", "new"),
    [
        ("segkit.engine.resume", "find_resume_checkpoint", "segkit.engine.training_state"),
        ("segkit.engine.checkpointing", "CheckpointMethods", "segkit.engine.training_state"),
    ],
)
def test_an_old_module_warns_and_serves_the_new_object(module, name, new, monkeypatch):
    monkeypatch.delitem(sys.modules, module, raising=False)
    with pytest.warns(DeprecationWarning, match=new):
        old = importlib.import_module(module)
    target = "TrainingStateMethods" if name == "CheckpointMethods" else name
    assert getattr(old, name) is getattr(importlib.import_module(new), target)


def test_model_from_checkpoint_is_still_served_by_segkit_export():
    from segkit.export import model_from_checkpoint
    from segkit.models.from_checkpoint import model_from_checkpoint as moved

    assert model_from_checkpoint is moved
