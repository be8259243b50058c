"""Storing a paged Alegra list in order, each batch of pages with the checkpoint after it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import aclosing
from typing import Any

from sync.jobs.prefetch import Fetcher, batches_ahead
from sync.jobs.runner import JobRun

SavePage = Callable[[list[dict[str, Any]], int, str], Awaitable[None]]


async def store_pages(
    job: JobRun,
    phase: str,
    fetch: Fetcher,
    *,
    start: int,
    save: SavePage,
    detail: dict[str, Any],
) -> bool:
    """Store the list's pages from `start` in order, each batch of pages that arrived together
    in one transaction with the checkpoint after it (`save(rows, following_offset,
    confirmed_at)`). False when stopped between batches."""
    async with aclosing(batches_ahead(fetch, start, pace=job.pace_s)) as batches:
        while (batch := await job.next_unless_stopping(batches)) is not None:
            following = batch[-1].start + len(batch[-1].rows)
            rows = [row for page in batch for row in page.rows]
            await save(rows, following, fetch.confirmed_at(batch))
            detail[phase] = following
            await job.page_done(phase, following, batch[-1].total, pages=len(batch))
            if job.stopping:
                return False
    return not job.stopping
