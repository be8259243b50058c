"""Pages in order, with the next few already on their way, spaced at the rate the limit
allows; the budget still paces them and pages are handed over strictly in order, so a
checkpoint after a page still means every row before it is stored.
Design: docs/sync.md ("Backfill", pages ahead).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from contextlib import aclosing

from sync.alegra.client import Page
from sync.alegra.pages import MAX_PAGE_SIZE, next_start
from sync.store.db import utcnow

DEPTH = 4

FetchPage = Callable[[int], Awaitable[Page]]
# Seconds to leave between two requests, given how many pages are left (None: not known).
Pace = Callable[[int | None], float]


def no_pace(pages_left: int | None) -> float:
    """Every request as soon as the window of `depth` allows."""
    return 0.0


async def first_page(pages: AsyncGenerator[Page, None]) -> Page:
    """The first page a paging generator yields (one request); the generator is closed."""
    async with aclosing(pages) as stream:
        async for page in stream:
            return page
    raise RuntimeError("a paging generator yielded no page")  # iter_pages always yields one


class Fetcher:
    """A `fetch(offset)` for `batches_ahead` that notes when each page's answer arrived.

    A page's rows are as Alegra had them when it answered, however long the page then waits for
    the ones before it: that moment, not the moment of storing, is their `confirmed_at`, so a
    confirmation stored meanwhile (a webhook's fetch) is newer and wins.
    """

    def __init__(self, pages_from: Callable[[int], AsyncGenerator[Page, None]]) -> None:
        self.pages_from = pages_from
        self._arrived: dict[int, str] = {}

    async def __call__(self, offset: int) -> Page:
        page = await first_page(self.pages_from(offset))
        self._arrived[offset] = utcnow()
        return page

    def confirmed_at(self, batch: Sequence[Page]) -> str:
        """The earliest arrival among pages stored together (now, for a page not fetched here)."""
        now = utcnow()
        return min(self._arrived.pop(page.start, now) for page in batch)


def fetcher(pages_from: Callable[[int], AsyncGenerator[Page, None]]) -> Fetcher:
    """A `fetch(offset)` for `batches_ahead` from a paging function (`resources.iter_contacts`)."""
    return Fetcher(pages_from)


def _plan(queued_until: int, total: int | None, in_flight: int, depth: int) -> list[int]:
    """The offsets to request now: after `queued_until`, below `total`, up to `depth` in flight."""
    if total is None:
        return []
    room = max(0, depth - in_flight)
    return list(range(queued_until, total, MAX_PAGE_SIZE))[:room]


class _Window:
    """The requests out, oldest first, the offset after the last one requested, and when the
    next one may start (`pace_s` apart)."""

    def __init__(self, fetch: FetchPage, start: int, depth: int, pace: Pace) -> None:
        self.fetch = fetch
        self.depth = depth
        self.pace = pace
        self.tasks: deque[asyncio.Task[Page]] = deque()
        self.queued_until = start
        self.next_slot = 0.0
        self._request(start, None)

    def _request(self, offset: int, total: int | None) -> None:
        left = None if total is None else -(-max(0, total - offset) // MAX_PAGE_SIZE)
        now = asyncio.get_running_loop().time()
        delay = self.next_slot - now if self.next_slot > now else 0.0
        self.next_slot = max(now, self.next_slot) + self.pace(left)
        self.tasks.append(asyncio.ensure_future(self._paced(offset, delay)))
        self.queued_until = offset + MAX_PAGE_SIZE

    async def _paced(self, offset: int, delay: float) -> Page:
        if delay > 0:
            await asyncio.sleep(delay)
        return await self.fetch(offset)

    def top_up(self, following: int, total: int | None) -> None:
        """After a page: make sure `following` is requested, then the next ones below `total`."""
        if not self.tasks and self.queued_until <= following:
            self._request(following, total)  # nothing ahead (no total known): one at a time
        for offset in _plan(self.queued_until, total, len(self.tasks), self.depth):
            self._request(offset, total)

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


def _following(page: Page) -> int | None:
    return next_start(page.start, MAX_PAGE_SIZE, len(page.rows), page.total)


def _ready(task: asyncio.Task[Page]) -> bool:
    return task.done() and not task.cancelled() and task.exception() is None


async def batches_ahead(
    fetch: FetchPage, start: int = 0, *, depth: int = DEPTH, pace: Pace = no_pace
) -> AsyncGenerator[list[Page], None]:
    """Yield the pages of a list from `start`, in order, keeping up to `depth` requests out.

    Each batch is the next page plus those right after it that have already arrived, so a
    consumer slower than Alegra stores several pages in one transaction. `fetch(offset)` returns
    the page at that offset (limit 30). Each request starts `pace(pages left)` seconds after the
    one before it at the earliest. Ends, like a
    sequential loop, on a page shorter than the limit or once the (latest) total is reached.
    Raises what `fetch` raises, in its turn.
    """
    window = _Window(fetch, start, depth, pace)
    try:
        while window.tasks:
            batch = [await window.tasks.popleft()]
            while window.tasks and _ready(window.tasks[0]) and _following(batch[-1]) is not None:
                batch.append(window.tasks.popleft().result())
            following = _following(batch[-1])
            if following is not None:
                window.top_up(following, batch[-1].total)
            yield batch
            if following is None:
                return
    finally:
        await window.close()
