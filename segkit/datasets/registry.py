"""The ``DATASETS`` registry, in a leaf module: the family's modules import it to register their members, and the
package's ``__init__`` imports them and it (no module imports the package that imports it back)."""

from __future__ import annotations

from torch.utils.data import Dataset

from segkit.registry import Registry

__all__ = ["DATASETS"]

DATASETS: Registry[Dataset] = Registry("datasets")
