"""Bad sample files: the error that names the file and the reason, and the log of files skipped."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

_log = logging.getLogger(__name__)

__all__ = ["BadSampleError", "BadSampleLog"]


class BadSampleError(ValueError):
    """A sample file that cannot be used; the message names the file and the reason."""


class _MissingFileError(BadSampleError, FileNotFoundError):
    """A file that does not exist: a bad sample for the datasets, a ``FileNotFoundError`` for everyone else."""


class BadSampleLog:
    """The bad files met with ``on_bad_sample="skip"``: each printed once with its reason, counted per epoch.

    Every line it prints ends with the total skipped and, once ``total`` (the samples before any was
    skipped) is known, the share of the data lost: ``(198 of 290 samples skipped, 68.3% of the data)``.

    Each dataset holds one as ``dataset.bad_samples`` and fills it in the process that loads the
    sample. With DataLoader workers, the skipped files also travel in the batch under the key
    ``"bad_samples"`` (a list of ``(path, reason)``), so the main process sees them too::

        for batch in loader:
            log.update(batch.get("bad_samples", ()))   # prints each new file once
        print(log.end_epoch())                         # "3 bad samples skipped this epoch (3 of 40 ...)"

    Args:
        name: the prefix of the lines (the dataset's class name).
        total: the number of samples before any was skipped; None until known (the share is then left out).
    """

    def __init__(self, name: str = "dataset", total: int | None = None) -> None:
        self.name = name
        self.total = total
        self.reasons: dict[str, str] = {}
        self.epoch_count = 0
        self._epoch_seen: set[str] = set()

    def totals(self) -> str:
        """E.g. ``198 of 290 samples skipped in total, 68.3% of the data`` (no share while ``total`` is unknown)."""
        n = len(self.reasons)
        if not self.total:
            return f"{n} samples skipped in total"
        return f"{n} of {self.total} samples skipped in total, {100.0 * n / self.total:.1f}% of the data"

    def update(self, items: Iterable[tuple[str, str]], echo: bool = True) -> None:
        """Record ``(path, reason)`` pairs; print each file the first time it is seen, with the running total."""
        for path, reason in items:
            if path not in self.reasons:
                self.reasons[path] = reason
                if echo:
                    _log.warning(f"{self.name}: skipped bad sample {reason} ({self.totals()})")
            if path not in self._epoch_seen:
                self._epoch_seen.add(path)
                self.epoch_count += 1

    def report(self, items: Sequence[tuple[str, str]], what: str, shown: int = 3) -> None:
        """Record many ``(path, reason)`` pairs found at once (a check at construction) and print one line.

        Args:
            items: the skipped samples.
            what: what they have in common, e.g. "images without a mask".
            shown: how many reasons the line quotes.
        """
        items = [(p, r) for p, r in items if p not in self.reasons]
        if not items:
            return
        self.reasons.update(items)
        first = "; ".join(r for _, r in items[:shown]) + (
            f"; and {len(items) - shown} more" if len(items) > shown else ""
        )
        _log.warning(f"{self.name}: skipped bad samples: {len(items)} {what} dropped: {first} ({self.totals()})")

    def end_epoch(self) -> str:
        """Return the epoch's summary line and reset the epoch counter."""
        line = f"{self.name}: {self.epoch_count} bad samples skipped this epoch ({self.totals()})"
        self.epoch_count = 0
        self._epoch_seen = set()
        return line

    def __len__(self) -> int:
        return len(self.reasons)
