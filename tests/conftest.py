"""What every test shares."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _forwarder_log_handler_removed() -> Iterator[None]:
    """A command run in the test's process (`forwarder run` and the like) points the root logger
    at the stderr of that moment, which under pytest is a capture closed with the test: a later
    test's log line would then fail to write. Take that handler away after each test."""
    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in before and type(handler) is logging.StreamHandler:
            root.removeHandler(handler)
    root.setLevel(level)
