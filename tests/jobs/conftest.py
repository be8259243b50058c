"""Fixtures for the jobs suite: settings on a real store (SQLite, then PostgreSQL), and a worker
context whose real `AlegraClient` talks to the simulator (with short backoffs so failure tests
stay fast)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from sync.alegra.budget import RateBudget
from sync.alegra.client import AlegraClient
from sync.alegra.records import ContactRecord, contact_from_alegra
from sync.context import WorkerContext
from sync.jobs.runner import JobFn, JobResult, Progress, run_job
from sync.settings import Settings, load_settings
from sync.store.contacts import live_contacts
from sync.store.db import Database
from tests.support.databases import url_of
from tests.support.procs import TEST_SECRET_KEY
from tests.support.servers import RunningSimulator


def sim_settings(simulator: RunningSimulator, tmp_path: Path, *,
                 database: Path | str | None = None, **env: str) -> Settings:
    """Settings pointing at the simulator, with its rate limit, on `database` (a
    `database_target`), else `tmp_path/cache.db`."""
    environ = {
        "ALEGRA_BASE_URL": simulator.base_url,
        "ALEGRA_EMAIL": simulator.email,
        "ALEGRA_TOKEN": simulator.token,
        "ALEGRA_RATE_LIMIT": str(simulator.config.rate_limit),
        "ALEGRA_RATE_WINDOW_S": str(simulator.config.window_s),
        "DATABASE_URL": url_of(database or tmp_path / "cache.db"),
        "SECRET_KEY": TEST_SECRET_KEY,
        "LOG_FORMAT": "json",
        **env,
    }
    return load_settings(env_file=None, environ=environ)


@pytest.fixture
def settings(simulator: RunningSimulator, tmp_path: Path, database_target: Path | str
             ) -> Settings:
    """On each engine in turn (`engine`)."""
    return sim_settings(simulator, tmp_path, database=database_target)


@asynccontextmanager
async def worker_context(settings: Settings) -> AsyncIterator[WorkerContext]:
    """What the worker gives its lanes: the store, one budget, one real client."""
    db = await Database.open(settings.database_target)
    budget = RateBudget(limit=settings.rate_limit, window_s=settings.rate_window_s)
    client = AlegraClient(
        settings.alegra_base_url, settings.alegra_email or "", str(settings.alegra_token), budget,
        backoff_base_s=0.01, backoff_cap_s=0.05,
    )
    try:
        yield WorkerContext(settings, db, client, budget, asyncio.Event())
    finally:
        await client.aclose()
        await db.close()


@pytest.fixture
async def ctx(settings: Settings) -> AsyncIterator[WorkerContext]:
    async with worker_context(settings) as context:
        yield context


async def run_once(
    ctx: WorkerContext, name: str, fn: JobFn, on_progress: Callable[[Progress], None] | None = None
) -> JobResult:
    return await run_job(ctx, name, fn, on_progress=on_progress)


def simulator_contacts(simulator: RunningSimulator) -> dict[str, ContactRecord]:
    """What Alegra holds now, as the cache should hold it."""
    with simulator.state.lock:
        rows = [dict(row) for row in simulator.state.contacts.values()]
    return {row["id"]: contact_from_alegra(row) for row in rows}


async def cached_contacts(db: Database) -> dict[str, ContactRecord]:
    return {record.alegra_id: record for record in await live_contacts(db)}

