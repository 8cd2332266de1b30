"""The ``MODELS`` registry, in a leaf module: the family's modules import it to register their members, and the
package's ``__init__`` imports them and it (no module imports the package that imports it back)."""

from __future__ import annotations

from torch import nn

from segkit.registry import Registry

__all__ = ["MODELS"]

MODELS: Registry[nn.Module] = Registry("models")
