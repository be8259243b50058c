"""What every worker lane and job gets: settings, the store, the one Alegra client, the stop signal.

Kept apart from `sync/worker.py` so the lanes can name it without importing the worker itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sync.alegra.budget import RateBudget
from sync.alegra.client import AlegraClient
from sync.settings import Settings
from sync.store.db import DEFAULT_COMPANY, Database


@dataclass
class WorkerContext:
    """The shared state of one worker process (or one foreground CLI job)."""

    settings: Settings
    db: Database
    alegra: AlegraClient
    budget: RateBudget
    stopping: asyncio.Event
    company: str = DEFAULT_COMPANY  # `db` is scoped to it; the Alegra client calls as it

    def __post_init__(self) -> None:
        # Once stopping, no lane waits out a rate window: `acquire` raises `Stopping` instead.
        self.budget.stop_waiting_on(self.stopping)

    async def sleep(self, seconds: float) -> bool:
        """Sleep up to `seconds`, waking early on stop. Returns True if the worker is stopping."""
        try:
            await asyncio.wait_for(self.stopping.wait(), timeout=seconds)
        except TimeoutError:
            return False
        return True


Lane = Callable[[WorkerContext], Awaitable[None]]
