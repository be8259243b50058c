"""Text for a terminal: colour only when the stream is one and NO_COLOR is not set, and ages
as an operator reads them.

NO_COLOR (https://no-color.org): any non-empty value turns colour off.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime
from typing import TextIO

_CODES = {"green": "32", "red": "31", "yellow": "33", "bold": "1", "dim": "2"}


def colour_wanted(stream: TextIO, environ: Mapping[str, str] | None = None) -> bool:
    """True when `stream` is a terminal and NO_COLOR is unset or empty."""
    env = os.environ if environ is None else environ
    return stream.isatty() and not env.get("NO_COLOR")


class Paint:
    """Wraps text in ANSI colours, or leaves it as it is."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, text: str, style: str) -> str:
        if not self.enabled:
            return text
        return f"\x1b[{_CODES[style]}m{text}\x1b[0m"


def duration(seconds: float) -> str:
    """3 s, 4 min, 2.5 h, 3 d."""
    seconds = abs(seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 36 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def since(stamp: str | None, now: datetime) -> str:
    """`4 min ago`, `in 2.5 h`, or `never` for a stored timestamp."""
    if not stamp:
        return "never"
    delta = (now - datetime.fromisoformat(stamp)).total_seconds()
    return f"{duration(delta)} ago" if delta >= 0 else f"in {duration(delta)}"
