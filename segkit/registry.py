"""One small generic registry that maps names to classes or factory functions."""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable
from typing import Any, Generic, TypeVar

__all__ = ["Registry", "UnknownNameError"]

T = TypeVar("T")


class UnknownNameError(KeyError):
    """Raised when a registry has no entry of the requested name.

    Subclasses ``KeyError`` so code that catches lookups keeps working, but the
    message is readable (``KeyError`` would show it in quotes).
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class Registry(Generic[T]):
    """A named table of builders (classes or functions) of one family.

    Args:
        kind: what the entries are, in the plural ("models", "losses"); used in messages.

    Example:
        >>> MODELS = Registry("models")
        >>> @MODELS.register("tiny")
        ... class Tiny:
        ...     def __init__(self, num_classes: int = 2): self.num_classes = num_classes
        >>> MODELS.build("tiny", num_classes=3).num_classes
        3
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Callable[..., T]] = {}

    def register(self, name: str, *aliases: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Return a decorator that registers a class or function under ``name`` (and ``aliases``).

        Args:
            name: the registered name, lower case by convention.
            *aliases: further names for the same entry.

        Returns:
            The decorator; it returns the decorated object unchanged.

        Raises:
            ValueError: a name is already registered.
        """

        def decorator(obj: Callable[..., T]) -> Callable[..., T]:
            for key in (name, *aliases):
                if key in self._entries:
                    raise ValueError(f"{self.kind}: the name {key!r} is already registered by {self.where(key)}")
            for key in (name, *aliases):
                self._entries[key] = obj
            return obj

        return decorator

    def get(self, name: str) -> Callable[..., T]:
        """Return the class or function registered under ``name``.

        Raises:
            UnknownNameError: (a ``KeyError``) no such name; the message suggests the
                closest names and lists every known one.
        """
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(self._unknown_message(name)) from None

    def build(self, name: str, **kwargs: Any) -> T:
        """Build the entry ``name`` with keyword arguments, exactly as calling it directly."""
        return self.get(name)(**kwargs)

    def names(self, pattern: str | None = None) -> list[str]:
        """Return the sorted registered names, optionally filtered by a glob ``pattern`` ("unet*")."""
        keys = sorted(self._entries)
        if pattern is not None:
            keys = [k for k in keys if fnmatch.fnmatch(k, pattern)]
        return keys

    def where(self, name: str) -> str:
        """Return ``"module.QualifiedName"`` of the object registered under ``name``."""
        obj = self.get(name)
        return f"{obj.__module__}.{getattr(obj, '__qualname__', repr(obj))}"

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {len(self)} entries)"

    def _unknown_message(self, name: str) -> str:
        known = self.names()
        close = difflib.get_close_matches(str(name), known, n=3, cutoff=0.5)
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        return f"no entry named {name!r} in {self.kind}.{hint} Known {self.kind}: {', '.join(known)}"
