"""Per-key creation locks: receipts racing for the same new supplier or account create it once.

One worker process per Alegra account is the architecture, so an asyncio lock per natural key
("supplier:131246796", "account:combustible") serialises "look in the cache → ask Alegra →
create → write through" for that key, while different keys proceed in parallel. The second
receipt in line then finds the first one's write-through in the cache.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class KeyedLocks:
    """A lock per key, created on first use and dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._users[key] = self._users.get(key, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._users[key] -= 1
            if self._users[key] == 0:
                del self._users[key]
                del self._locks[key]

    def __len__(self) -> int:
        """How many keys are held or awaited now (0 when idle: nothing leaks)."""
        return len(self._locks)
