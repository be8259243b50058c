"""Logging writes to the process's stderr as it is when a logger is made."""

from __future__ import annotations

import io
import sys

import pytest
import structlog

from sync.logs import configure_logging, get_logger


def test_a_logger_made_after_stderr_changed_writes_to_the_new_stderr(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Configured while stderr was a stream since closed (a command run under capture), a
    logger made later writes to the stderr of that moment instead of failing."""
    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    try:
        configure_logging("json", "info")
        first.close()
        monkeypatch.setattr(sys, "stderr", second)
        get_logger(component="test").error("test.logged")
    finally:
        structlog.reset_defaults()
    assert '"event": "test.logged"' in second.getvalue()
