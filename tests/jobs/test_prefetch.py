"""Pages requested a few ahead are still handed over in order, and stop where a list ends."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from sync.alegra.client import Page
from sync.jobs.prefetch import FetchPage, batches_ahead

pytestmark = pytest.mark.anyio


async def pages_ahead(fetch: FetchPage, start: int = 0, depth: int = 4) -> AsyncIterator[Page]:
    """The batches, one page at a time."""
    async for batch in batches_ahead(fetch, start, depth=depth):
        for page in batch:
            yield page


class FakeList:
    """A list of `size` rows served 30 at a time, answering later offsets first."""

    def __init__(self, size: int, *, with_total: bool = True, fail_at: int | None = None) -> None:
        self.size = size
        self.with_total = with_total
        self.fail_at = fail_at
        self.asked: list[int] = []
        self.asked_at: list[float] = []
        self.out = self.most_out = 0

    async def fetch(self, offset: int) -> Page:
        self.asked.append(offset)
        self.asked_at.append(time.monotonic())
        self.out += 1
        self.most_out = max(self.most_out, self.out)
        try:
            await asyncio.sleep(0.001 * (100 - offset % 100))  # later pages may answer first
        finally:
            self.out -= 1
        if offset == self.fail_at:
            raise ConnectionError("lost")
        rows = [{"id": str(i)} for i in range(offset, min(offset + 30, self.size))]
        return Page(offset, rows, self.size if self.with_total else None)


async def test_pages_come_in_order_with_a_few_requests_out() -> None:
    """Every row once, in order, from the start offset; never more than 3 requests out."""
    source = FakeList(200)
    starts = [page.start async for page in pages_ahead(source.fetch, 30, 3)]
    assert starts == list(range(30, 200, 30))
    assert source.most_out <= 3
    assert sorted(source.asked) == list(range(30, 200, 30))


async def test_without_a_total_pages_are_read_one_at_a_time_to_the_short_page() -> None:
    """With no total to plan from, the next page is asked only after the previous came back."""
    source = FakeList(95, with_total=False)
    pages = [page async for page in pages_ahead(source.fetch)]
    assert [len(p.rows) for p in pages] == [30, 30, 30, 5]
    assert source.most_out == 1


async def test_a_failed_page_raises_in_its_turn_and_nothing_after_it_is_handed_over() -> None:
    """A page that fails raises where it falls; the pages before it were already delivered."""
    source = FakeList(300, fail_at=90)
    seen: list[int] = []

    async def consume() -> None:
        async for page in pages_ahead(source.fetch):
            seen.append(page.start)

    with pytest.raises(ConnectionError):
        await consume()
    assert seen == [0, 30, 60]


async def test_stopping_early_cancels_the_requests_still_out() -> None:
    """A consumer that stops after one page leaves nothing running behind it."""
    source = FakeList(300)
    stream = batches_ahead(source.fetch, 90)
    async for _ in stream:
        await asyncio.sleep(0.005)  # the requests ahead are now out
        break
    assert source.out > 0
    await stream.aclose()
    assert source.out == 0


async def test_pages_that_arrived_while_the_consumer_was_busy_come_as_one_batch() -> None:
    """A slow consumer gets the pages already there together, still in order, none twice."""
    source = FakeList(300)
    batches: list[list[int]] = []
    async for batch in batches_ahead(source.fetch, depth=4):
        batches.append([page.start for page in batch])
        await asyncio.sleep(0.15)  # storing takes longer than fetching
    assert [start for batch in batches for start in batch] == list(range(0, 300, 30))
    assert max(len(batch) for batch in batches) > 1


async def test_requests_are_spaced_at_the_pace_given_for_the_pages_left() -> None:
    """No two requests start closer than the pace, which is asked with the pages still left
    (unknown before the first page says the total), so a caller can hurry the tail."""
    source = FakeList(240)
    asked_with: list[int | None] = []

    def pace(pages_left: int | None) -> float:
        asked_with.append(pages_left)
        return 0.02

    began = time.monotonic()  # the loop's clock: request k is due no sooner than k paces on
    async for _ in batches_ahead(source.fetch, depth=4, pace=pace):
        pass
    assert len(source.asked_at) == 8
    # A lower bound only: a loaded machine delays requests, never brings one forward.
    assert all(at - began >= k * 0.02 - 1e-6 for k, at in enumerate(source.asked_at))
    assert asked_with == [None, 7, 6, 5, 4, 3, 2, 1]
