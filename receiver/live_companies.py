"""The receiver's view of which companies take webhooks: live ids, refreshed every few seconds.

A delivery for a company that does not exist or is removed is refused like an unknown token.
The set is read again at most every `ttl_s`; a company not in it is looked up in the database
before the refusal, so a company added a moment ago gets its subscription handshake through.
The company `default` (the environment's account, which cannot be removed) is never looked up.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from sync.states import CompanyState
from sync.store.companies import company_state, live_companies
from sync.store.db import DEFAULT_COMPANY, Database

TTL_S = 5.0


class LiveCompanies:
    """`await live.contains(company)`: exists and is not removed (per the last few seconds)."""

    def __init__(
        self, db: Database, *, ttl_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self._ttl_s = TTL_S if ttl_s is None else ttl_s
        self._clock = clock
        self._ids: frozenset[str] = frozenset()
        self._expires = float("-inf")
        self._refreshing = asyncio.Lock()

    async def contains(self, company: str) -> bool:
        if company == DEFAULT_COMPANY:
            return True
        if self._clock() >= self._expires:
            await self._refresh()
        if company in self._ids:
            return True
        if await _is_live(self._db, company):  # added since the last refresh
            self._ids = self._ids | {company}
            return True
        return False

    async def _refresh(self) -> None:
        """Read the set again; one reader at a time (the others then find it fresh)."""
        async with self._refreshing:
            if self._clock() < self._expires:
                return
            self._ids = frozenset(await live_companies(self._db))
            self._expires = self._clock() + self._ttl_s


async def _is_live(db: Database, company: str) -> bool:
    state = await company_state(db, company)
    return state is not None and state[0] != CompanyState.REMOVED
