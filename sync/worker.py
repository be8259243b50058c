"""The worker: the one process that spends the Alegra rate budget.

For every live company (`sync/fleet.py`) it runs lanes side by side, sharing that company's
`AlegraClient` and its user's `RateBudget`: receipts (priority RECEIPT), webhook events (EVENT),
scheduled jobs (BACKGROUND); and one heartbeat for the process. Work lives in SQLite rows; the
lanes only pick rows up, so a restart resumes.
SIGTERM sets `ctx.stopping`; each lane finishes or checkpoints its current step and returns.
One worker per SQLite database (`sync/instance.py`): it holds the database's worker lock, and
refuses to start while another worker holds it or beats in `worker_state`. On PostgreSQL any
number of workers, on any hosts, share the database: the fleet runs a company's lanes only
while it holds the company's lease (`sync/leasing.py`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import signal

from sync import instance, metrics
from sync.alegra.client import settings_account
from sync.company_account import live_accounts
from sync.context import Lane
from sync.events.lane import run as events_lane
from sync.fleet import Fleet
from sync.flow.lane import run as receipts_lane
from sync.jobs.scheduler import run as jobs_lane
from sync.logs import get_logger
from sync.notifications import delivery as notifications
from sync.notifications.queue import Scope
from sync.settings import Settings
from sync.states import CompanyState
from sync.store import companies
from sync.store.db import DEFAULT_COMPANY, Database, DatabaseUnavailable, utcnow
from sync.store.ops_queries import worker_state

HEARTBEAT_S = 2.0


def lanes() -> list[tuple[str, Lane]]:
    """Each company's lanes, in priority order."""
    return [
        ("receipts", receipts_lane),
        ("events", events_lane),
        ("jobs", jobs_lane),
    ]


async def heartbeat(fleet: Fleet) -> None:
    """Record that the worker is alive, with a snapshot of the default company's rate budget
    (the one `/readyz` and `status` show), for /readyz; store the metrics counted meanwhile.
    Only the holder of the default company's lease (or a worker that has not settled its leases
    yet) writes the budget: another worker's copy of it is not the one being spent."""
    default_budget = fleet.budget_for(settings_account(fleet.settings))  # its lanes share it
    while True:
        budget = default_budget.snapshot() if (
            fleet.holds(DEFAULT_COMPANY) or not fleet.balanced) else None
        try:
            await _beat(fleet.db, budget)
        except DatabaseUnavailable as exc:  # the worker keeps going; the metrics wait too
            fleet.outage.failed(exc, "heartbeat")
        else:
            fleet.outage.answered()
            await flush_metrics(fleet.db)
        try:
            await asyncio.wait_for(fleet.stopping.wait(), HEARTBEAT_S)
        except TimeoutError:
            continue
        return


async def _beat(db: Database, budget: dict[str, object] | None) -> None:
    if budget is None:
        await db.execute(
            "INSERT INTO worker_state(id, pid, beat_at) VALUES (1, ?, ?)"
            " ON CONFLICT(id) DO UPDATE SET pid=excluded.pid, beat_at=excluded.beat_at",
            (os.getpid(), utcnow()),
        )
        return
    await db.execute(
        "INSERT INTO worker_state(id, pid, beat_at, budget) VALUES (1, ?, ?, ?)"
        " ON CONFLICT(id) DO UPDATE SET pid=excluded.pid, beat_at=excluded.beat_at,"
        " budget=excluded.budget",
        (os.getpid(), utcnow(), json.dumps(budget)),
    )


async def flush_metrics(db: Database) -> None:
    """Store the counters gathered since the last beat (sync/metrics.py); on error they wait."""
    try:
        await metrics.flush(db)
    except Exception:
        get_logger(lane="heartbeat").exception("metrics.flush_failed")


async def run_worker(settings: Settings) -> None:
    """Open the store and the client, run every lane until SIGTERM/SIGINT, then close cleanly.

    Raises InstanceBusy, before any lane starts, when another worker runs on the SQLite database.
    On PostgreSQL any number of workers run: the leases share the companies out."""
    if settings.database_url is not None:
        await _open_and_run(settings, single=False)
        return
    lock = instance.acquire(settings.database_path, instance.Role.WORKER)
    try:
        await _open_and_run(settings, single=True)
    finally:
        lock.release()


async def _open_and_run(settings: Settings, *, single: bool) -> None:
    db = await Database.open(settings.database_target)
    try:
        if single:
            await refuse_if_another_beats(db)
        await _run_lanes(settings, db)
    finally:
        await db.close()


async def refuse_if_another_beats(db: Database, now: dt.datetime | None = None) -> None:
    """InstanceBusy if another live worker's heartbeat is fresh: one that took no lock (an
    older version during a deploy overlap, or one started on another machine)."""
    row = await worker_state(db)
    if row is None:
        return
    age = instance.fresh_heartbeat(row["pid"], row["beat_at"], now or dt.datetime.now(dt.UTC))
    if age is not None:
        raise instance.InstanceBusy(
            db.path, instance.Role.WORKER, row["pid"], f", heartbeat {age:.0f} s ago"
        )


def _count_call(company: str, method: str, path: str, status: int | None, seconds: float) -> None:
    metrics.observe_alegra_call(method, path, status, seconds, company=company)


async def _set_state(db: Database, company: str, state: CompanyState, reason: str | None) -> None:
    await companies.set_state(db, company, state, reason)


def _scope(fleet: Fleet) -> Scope:
    """The notifications this worker sends: its leased companies' (and, holding `default`,
    pings and removed companies'), so that with many workers each delivery has one sender."""
    live = tuple(sorted(fleet.known))
    held = tuple(company for company in live if fleet.holds(company))
    return Scope(held=held, live=live, rest=DEFAULT_COMPANY in held)


async def _run_lanes(settings: Settings, db: Database) -> None:
    log = get_logger(process="worker")
    stopping = asyncio.Event()
    fleet = Fleet(
        settings, db, stopping, lanes=lanes(),
        load=lambda: live_accounts(settings, db),
        set_state=lambda company, state, reason: _set_state(db, company, state, reason),
        on_response=_count_call,
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    log.info("worker.started", alegra=settings.alegra_base_url, pid=os.getpid(),
             worker=fleet.leases.worker_id)
    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(fleet.run(), name="fleet")
            group.create_task(heartbeat(fleet), name="heartbeat")
            # Partners' notifications: beside the fleet, not a company lane (no Alegra budget).
            group.create_task(notifications.run(settings, db, stopping, lambda: _scope(fleet)),
                              name="notifications")
    finally:
        await flush_metrics(db)
        log.info("worker.stopped")
