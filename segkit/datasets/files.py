"""Deprecated location of ``BadSampleLog``, kept only for ``segkit/engine/trainer.py``: import from ``segkit.datasets``."""

# The code that lived here is in bad_samples.py, decoding.py, label_tables.py, file_dataset.py and
# instance_targets.py. Delete this file once segkit/engine/trainer.py imports BadSampleLog from segkit.datasets.
from segkit.datasets.bad_samples import BadSampleLog

__all__ = ["BadSampleLog"]
