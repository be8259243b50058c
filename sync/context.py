"""What every worker lane and job gets: settings, the store, the one Alegra client, the stop signal.

Kept apart from `sync/worker.py` so the lanes can name it without importing the worker itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sync.alegra.budget import RateBudget
from sync.alegra.client import AlegraAccount, AlegraClient
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
    # Set by the worker's fleet when it sees work for this company (one look for every company,
    # sync/fleet.py); without them (a CLI job, a test) the lanes poll the table themselves.
    receipts_ready: asyncio.Event | None = None
    events_due: asyncio.Event | None = None
    # The account `alegra` calls as, set by the fleet: what `doctor` reads with, on `budget`,
    # after the company's first backfill (None: a CLI job or a test; no doctor then).
    account: AlegraAccount | None = None

    def __post_init__(self) -> None:
        # Once stopping, no lane waits out a rate window: `acquire` raises `Stopping` instead.
        self.budget.stop_waiting_on(self.stopping)

    async def idle(self, wake: asyncio.Event | None, poll_s: float, longest_s: float) -> bool:
        """Wait for new work: until `wake` is set (then cleared), at most `longest_s`; without a
        `wake`, `poll_s`. Returns True if the worker is stopping."""
        if wake is None:
            return await self.sleep(poll_s)
        waits = {asyncio.ensure_future(wake.wait()), asyncio.ensure_future(self.stopping.wait())}
        try:
            await asyncio.wait(waits, timeout=longest_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()
        wake.clear()
        return self.stopping.is_set()

    async def sleep(self, seconds: float) -> bool:
        """Sleep up to `seconds`, waking early on stop. Returns True if the worker is stopping."""
        try:
            await asyncio.wait_for(self.stopping.wait(), timeout=seconds)
        except TimeoutError:
            return False
        return True


Lane = Callable[[WorkerContext], Awaitable[None]]
