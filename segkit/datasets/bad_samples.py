"""Bad sample files: the error that names the file and the reason, and the log of files skipped."""

from __future__ import annotations

import sys
from collections.abc import Iterable

__all__ = ["BadSampleError", "BadSampleLog"]


class BadSampleError(ValueError):
    """A sample file that cannot be used; the message names the file and the reason."""


class _MissingFileError(BadSampleError, FileNotFoundError):
    """A file that does not exist: a bad sample for the datasets, a ``FileNotFoundError`` for everyone else."""


class BadSampleLog:
    """The bad files met with ``on_bad_sample="skip"``: each printed once with its reason, counted per epoch.

    Each dataset holds one as ``dataset.bad_samples`` and fills it in the process that loads the
    sample. With DataLoader workers, the skipped files also travel in the batch under the key
    ``"bad_samples"`` (a list of ``(path, reason)``), so the main process sees them too::

        for batch in loader:
            log.update(batch.get("bad_samples", ()))   # prints each new file once
        print(log.end_epoch())                         # "3 bad samples skipped this epoch"
    """

    def __init__(self, name: str = "dataset") -> None:
        self.name = name
        self.reasons: dict[str, str] = {}
        self.epoch_count = 0
        self._epoch_seen: set[str] = set()

    def update(self, items: Iterable[tuple[str, str]], echo: bool = True) -> None:
        """Record ``(path, reason)`` pairs; print each file the first time it is seen."""
        for path, reason in items:
            if path not in self.reasons:
                self.reasons[path] = reason
                if echo:
                    print(f"{self.name}: skipped bad sample {reason}", file=sys.stderr)
            if path not in self._epoch_seen:
                self._epoch_seen.add(path)
                self.epoch_count += 1

    def end_epoch(self) -> str:
        """Return the epoch's summary line and reset the epoch counter."""
        line = f"{self.name}: {self.epoch_count} bad samples skipped this epoch ({len(self.reasons)} in total)"
        self.epoch_count = 0
        self._epoch_seen = set()
        return line

    def __len__(self) -> int:
        return len(self.reasons)
