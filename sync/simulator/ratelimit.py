"""Alegra's rate limit: a fixed window per credentials (150 requests a minute by default)."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class WindowState:
    """What the `X-Rate-Limit-*` headers report after a request."""

    allowed: bool
    limit: int
    remaining: int
    reset_s: int  # whole seconds left in the window, rounded up

    def headers(self) -> dict[str, str]:
        return {
            "X-Rate-Limit-Limit": str(self.limit),
            "X-Rate-Limit-Remaining": str(self.remaining),
            "X-Rate-Limit-Reset": str(self.reset_s),
        }


class FixedWindows:
    """One counter per key; a window opens at the first request after the previous one ended."""

    def __init__(self, limit: int, window_s: float) -> None:
        self.limit = limit
        self.window_s = window_s
        self._windows: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def take(self, key: str, now: float) -> WindowState:
        """Spend one request of `key`'s window; `allowed` is False (nothing spent) when over."""
        with self._lock:
            start, used = self._windows.get(key, (now, 0))
            if now >= start + self.window_s:
                start, used = now, 0
            allowed = used < self.limit
            used += 1 if allowed else 0
            self._windows[key] = (start, used)
        return self._state(allowed, used, start, now)

    def peek(self, key: str, now: float) -> WindowState:
        """The window's state without spending anything."""
        with self._lock:
            start, used = self._windows.get(key, (now, 0))
        if now >= start + self.window_s:
            start, used = now, 0
        return self._state(used < self.limit, used, start, now)

    def _state(self, allowed: bool, used: int, start: float, now: float) -> WindowState:
        reset = max(0, math.ceil(start + self.window_s - now))
        return WindowState(allowed, self.limit, max(0, self.limit - used), reset)
