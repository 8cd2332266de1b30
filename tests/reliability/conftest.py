"""Shared fixture of the reliability tests: a watchdog that turns a hang (even inside C code) into a failure."""

from __future__ import annotations

import faulthandler

import pytest


@pytest.fixture
def watchdog():
    """Kill the test process with a traceback if the test hangs (also inside C code) for 300 s."""
    faulthandler.dump_traceback_later(300, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()
