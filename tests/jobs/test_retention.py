"""Retention: which inbox rows and receipt files are deleted, which are kept, at a given time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sync.context import WorkerContext
from sync.job_records import JobState
from sync.jobs import retention, schedule
from sync.store import jobs as job_store
from sync.store import ops_queries
from sync.store import retention as retention_store
from sync.store.db import Database
from sync.store.inbox import NewDelivery, write_batch
from sync.store.partners import create_partner
from tests.jobs.conftest import run_once

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def days_ago(days: float) -> str:
    return (NOW - timedelta(days=days)).isoformat(timespec="microseconds")


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await Database.open(tmp_path / "retention.db")
    yield database
    await database.close()


async def add_event(db: Database, state: str, received: float, applied: float | None) -> int:
    """An inbox row in `state`, received and applied the given number of days before NOW."""
    [inbox_id] = await write_batch(db, [NewDelivery(b'{"subject": "edit-client"}', 0)])
    await db.execute(
        "UPDATE inbox SET state = ?, received_at = ?, applied_at = ? WHERE id = ?",
        (state, days_ago(received), None if applied is None else days_ago(applied), inbox_id),
    )
    return inbox_id


async def inbox_ids(db: Database) -> set[int]:
    return {int(r["id"]) for r in await db.fetchall("SELECT id FROM inbox")}


async def test_settled_inbox_rows_older_than_the_setting_go_and_every_other_row_stays(
    db: Database,
) -> None:
    """Applied and skipped rows settled more than N days ago are deleted; rows still waiting,
    failed or parked are kept however old, and so is a row settled within the N days (even one
    received long before)."""
    gone = {await add_event(db, "applied", received=40, applied=40),
            await add_event(db, "skipped", received=31, applied=None)}
    kept = {await add_event(db, "parked", received=90, applied=None),
            await add_event(db, "received", received=90, applied=None),
            await add_event(db, "failed", received=60, applied=None),
            await add_event(db, "applied", received=60, applied=2),
            await add_event(db, "applied", received=29, applied=29),
            await add_event(db, "skipped", received=1, applied=None)}
    pruned = await retention.prune_inbox(db, 30, NOW)
    assert pruned == retention.Pruned(2)
    assert await inbox_ids(db) == kept
    assert not gone & await inbox_ids(db)


async def test_the_inbox_is_pruned_in_many_short_batches_and_ids_never_go_back(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backlog larger than a batch is deleted over several batches (each its own short
    transaction), kept rows in between included; the delivery counter and the next id go on
    from where they were."""
    monkeypatch.setattr(retention, "INBOX_BATCH", 3)
    old = [await add_event(db, "applied", received=50, applied=50) for _ in range(7)]
    parked = await add_event(db, "parked", received=45, applied=None)
    old += [await add_event(db, "applied", received=40, applied=40) for _ in range(4)]
    recent = await add_event(db, "applied", received=1, applied=1)
    before = await ops_queries.deliveries_stored(db)
    assert await retention.prune_inbox(db, 30, NOW) == retention.Pruned(len(old))
    assert await inbox_ids(db) == {parked, recent}
    assert await ops_queries.deliveries_stored(db) == before
    [next_id] = await write_batch(db, [NewDelivery(b"{}", 0)])
    assert next_id > recent


async def test_a_worker_stopping_stops_the_pruning_between_batches(db: Database) -> None:
    """Stopping: nothing more is deleted, and the pass says it was interrupted."""
    await add_event(db, "applied", received=40, applied=40)
    pruned = await retention.prune_inbox(db, 30, NOW, stopping=lambda: True)
    assert pruned == retention.Pruned(0, interrupted=True)
    assert len(await inbox_ids(db)) == 1


async def test_zero_days_keeps_everything(db: Database) -> None:
    """A retention of 0 days deletes nothing, however old."""
    await add_event(db, "applied", received=4000, applied=4000)
    assert await retention.prune_inbox(db, 0, NOW) == retention.Pruned(0)
    assert len(await inbox_ids(db)) == 1


async def add_receipt(
    db: Database, partner_id: str, status: str, created: float, completed: float | None
) -> str:
    """A receipt with a stored file and a recorded step, in `status`."""
    receipt_id = f"rcp_{status}_{created}_{completed}"
    await db.execute(
        "INSERT INTO receipts(id, partner_id, idempotency_key, body_hash, payload, status,"
        " receipt_date, created_at, updated_at, completed_at)"
        " VALUES (?, ?, ?, 'hash', '{}', ?, '2026-01-01', ?, ?, ?)",
        (receipt_id, partner_id, receipt_id, status, days_ago(created), days_ago(created),
         None if completed is None else days_ago(completed)),
    )
    await db.execute(
        "INSERT INTO receipt_attachments(receipt_id, filename, content_type, size, data)"
        " VALUES (?, 'r.jpg', 'image/jpeg', 4, ?)", (receipt_id, b"\xff\xd8\xff\xe0"))
    await db.execute(
        "INSERT INTO receipt_steps(receipt_id, step, state, updated_at)"
        " VALUES (?, 'bill', 'done', ?)", (receipt_id, days_ago(created)))
    return receipt_id


async def with_files(db: Database) -> set[str]:
    return {str(r[0]) for r in await db.fetchall("SELECT receipt_id FROM receipt_attachments")}


async def test_files_of_receipts_final_for_longer_than_the_setting_go_and_nothing_else(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file of a receipt completed or duplicate more than N days ago is deleted; a queued,
    processing or failed receipt keeps its file however old, and so does one final for less
    than N days. Receipts and their steps are never deleted."""
    monkeypatch.setattr(retention, "ATTACHMENT_BATCH", 2)
    partner, _ = await create_partner(db, "acme")
    gone = {await add_receipt(db, partner.id, "completed", created=45, completed=44),
            await add_receipt(db, partner.id, "duplicate", created=40, completed=40),
            await add_receipt(db, partner.id, "completed", created=31, completed=31)}
    kept = {await add_receipt(db, partner.id, "failed", created=90, completed=89),
            await add_receipt(db, partner.id, "queued", created=80, completed=None),
            await add_receipt(db, partner.id, "processing", created=70, completed=None),
            await add_receipt(db, partner.id, "completed", created=60, completed=3),
            await add_receipt(db, partner.id, "completed", created=2, completed=1)}
    pruned = await retention.prune_attachments(db, 30, NOW)
    assert pruned == retention.Pruned(3)
    assert await with_files(db) == kept
    receipts = await db.scalar("SELECT COUNT(*) FROM receipts")
    steps = await db.scalar("SELECT COUNT(*) FROM receipt_steps")
    assert (receipts, steps) == (len(gone | kept), len(gone | kept))


async def test_a_batch_of_files_stops_at_its_byte_bound(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files are freed a bounded number of bytes per transaction: with a bound below one file,
    each batch frees one, and every due file still goes."""
    monkeypatch.setattr(retention, "ATTACHMENT_BATCH_BYTES", 1)
    partner, _ = await create_partner(db, "acme")
    for n in range(3):
        await add_receipt(db, partner.id, "completed", created=40 + n, completed=40)
    batch = await retention_store.prune_attachments_batch(
        db, before=days_ago(30), after="", limit=50, max_bytes=1)
    assert (batch.deleted, batch.done) == (1, False)
    assert await retention.prune_attachments(db, 30, NOW) == retention.Pruned(2)
    assert await with_files(db) == set()


async def test_the_retention_job_is_declared_runs_before_the_backfill_and_records_its_run(
    ctx: WorkerContext,
) -> None:
    """The scheduler knows the job, it is due on a new database before any backfill, and a run
    prunes with the settings' days and records what it deleted."""
    assert schedule.RETENTION in schedule.JOB_NAMES
    now = datetime.now(UTC)
    assert schedule.first_run_at(ctx.settings, schedule.RETENTION, now) == now
    state = JobState(schedule.RETENTION, now, None)
    assert schedule.due_jobs([state], now, running=set(), subscriptions_enabled=False) == [
        schedule.RETENTION]
    [old] = await write_batch(ctx.db, [NewDelivery(b"{}", 0)])
    await ctx.db.execute("UPDATE inbox SET state = 'applied', received_at = ?, applied_at = ?"
                         " WHERE id = ?", ("2020-01-01T00:00:00.000000+00:00",) * 2 + (old,))
    [new] = await write_batch(ctx.db, [NewDelivery(b"{}", 0)])
    result = await run_once(ctx, schedule.RETENTION, retention.run)
    assert (result.outcome, result.detail) == (
        "success", {"inbox_deleted": 1, "attachment_deleted": 0, "notification_deleted": 0})
    assert await inbox_ids(ctx.db) == {new}
    [run] = await job_store.recent_runs(ctx.db, schedule.RETENTION)
    assert run.outcome == "success"
