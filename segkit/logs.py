"""segkit's messages: library code logs to ``logging.getLogger(__name__)`` (under ``"segkit"``); by default they are
printed as print() did (INFO to stdout, WARNING and above to stderr, the message alone), and a user silences or
redirects them as with any library: ``logging.getLogger("segkit").setLevel(logging.WARNING)``, or a handler of
their own with ``logging.getLogger("segkit").handlers.clear()``."""

from __future__ import annotations

import logging
import sys

__all__ = ["ConsoleHandler", "install_console_handler"]


class ConsoleHandler(logging.Handler):
    """Writes each record's message to the current ``sys.stdout`` (below WARNING) or ``sys.stderr`` (WARNING and
    above), looked up at each message, so redirected and captured streams receive it."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stream = sys.stderr if record.levelno >= logging.WARNING else sys.stdout
            stream.write(self.format(record) + "\n")
            stream.flush()
        except Exception:  # noqa: BLE001 (logging's own rule: a failing handler reports, never raises)
            self.handleError(record)


def install_console_handler() -> logging.Logger:
    """Give the ``"segkit"`` logger its console handler (once) at level INFO; returns the logger.

    Its records do not also propagate to the root logger (they would print twice where the root has a handler);
    a user who wants them there sets ``logging.getLogger("segkit").propagate = True`` and removes this handler.
    """
    logger = logging.getLogger("segkit")
    if not any(isinstance(h, ConsoleHandler) for h in logger.handlers):
        logger.addHandler(ConsoleHandler())
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger
