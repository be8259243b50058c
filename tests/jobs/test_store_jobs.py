"""Job state in SQLite: checkpoints written with their page, one holder per job, runs, reports."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest

from sync.alegra.records import ContactRecord, contact_from_alegra
from sync.store import jobs as job_store
from sync.store.contacts import get_cached_contact
from sync.store.db import Database, IntegrityError, utcnow

pytestmark = pytest.mark.anyio
LATER = "2999-01-01T00:00:00.000000+00:00"


@pytest.fixture
async def db(database_target: Path | str) -> AsyncIterator[Database]:
    """On each engine (`engine`)."""
    database = await Database.open(database_target)
    await job_store.ensure_jobs(database, {"backfill": utcnow()})
    yield database
    await database.close()


def a_contact(contact_id: str) -> ContactRecord:
    return contact_from_alegra({"id": contact_id, "name": f"Suplidor {contact_id}"})


async def test_a_page_and_its_checkpoint_are_stored_together(db: Database) -> None:
    """After a page is saved, its rows and the checkpoint after it are both there."""
    records = [a_contact("1"), a_contact("2")]
    await job_store.save_contacts_page(db, "backfill", records, source="backfill",
                                       confirmed_at=utcnow(),
                                       checkpoint={"phase": "contacts", "start": 2})
    state = await job_store.job_state(db, "backfill")
    assert state is not None
    assert state.checkpoint == {"phase": "contacts", "start": 2}
    row = await get_cached_contact(db, "2")
    assert row is not None
    assert row["source"] == "backfill"


async def test_a_page_that_fails_to_store_leaves_the_checkpoint_where_it_was(db: Database) -> None:
    """If writing the rows fails, the checkpoint does not move past them (one transaction)."""
    await job_store.save_checkpoint(db, "backfill", {"phase": "contacts", "start": 30})
    broken = dataclasses.replace(a_contact("9"), name=None)  # NOT NULL: the insert fails
    with pytest.raises(IntegrityError):
        await job_store.save_contacts_page(db, "backfill", [a_contact("8"), broken],
                                           source="backfill", confirmed_at=utcnow(),
                                           checkpoint={"phase": "contacts", "start": 60})
    state = await job_store.job_state(db, "backfill")
    assert state is not None
    assert state.checkpoint == {"phase": "contacts", "start": 30}
    assert await get_cached_contact(db, "8") is None


async def test_a_live_holder_keeps_the_job_and_a_dead_one_loses_it(db: Database) -> None:
    """A second process is refused while the holder lives; once it is gone, it takes over."""
    assert await job_store.claim_job(db, "backfill", owner="h:1", lease_until=LATER,
                                     holder_gone=lambda _: False) is None
    refused = await job_store.claim_job(db, "backfill", owner="h:2", lease_until=LATER,
                                        holder_gone=lambda _: False)
    assert refused == "h:1"
    taken = await job_store.claim_job(db, "backfill", owner="h:2", lease_until=LATER,
                                      holder_gone=lambda holder: holder == "h:1")
    assert taken is None


async def test_a_finished_run_records_its_outcome_and_releases_the_job(db: Database) -> None:
    """The job row shows the last outcome, duration, error and next run; the run row too."""
    await job_store.claim_job(db, "backfill", owner="h:1", lease_until=LATER,
                              holder_gone=lambda _: False)
    run_id = await job_store.start_run(db, "backfill")
    await job_store.finish_run(db, run_id, "backfill", owner="h:1", outcome="incomplete",
                               duration_s=1.5, error="RateLimited 429: slow down",
                               next_run_at=LATER, detail={"pages": 3})
    [state] = await job_store.job_states(db)
    assert (state.last_outcome, state.last_duration_s, state.last_error) == (
        "incomplete", 1.5, "RateLimited 429: slow down")
    assert (state.next_run_at, state.running) == (datetime.fromisoformat(LATER), False)
    [run] = await job_store.recent_runs(db, "backfill")
    assert (run.outcome, run.detail, run.duration_s) == ("incomplete", {"pages": 3}, 1.5)


async def test_the_last_drift_report_is_read_back_whole(db: Database) -> None:
    """The status endpoint gets the latest report with its counts and ids."""
    assert await job_store.last_drift_report(db) is None
    report = {"complete": True, "scanned": 3, "missing": 1, "extra": 0, "different": 0,
              "missing_ids": ["7"], "extra_ids": [], "differences": {}, "truncated": False}
    await job_store.save_drift_report(db, None, report)
    last = await job_store.last_drift_report(db)
    assert last is not None
    assert (last["complete"], last["missing"], last["missing_ids"]) == (True, 1, ["7"])


async def test_requesting_a_run_keeps_an_earlier_time(db: Database) -> None:
    """A requested run makes the job due now, but never postpones one due earlier."""
    await job_store.set_next_run(db, "backfill", LATER)
    await job_store.request_run(db, "backfill")
    state = await job_store.job_state(db, "backfill")
    assert state is not None
    assert state.next_run_at is not None
    assert state.next_run_at < datetime.fromisoformat(LATER)
    earlier = state.next_run_at
    await job_store.request_run(db, "backfill", LATER)
    again = await job_store.job_state(db, "backfill")
    assert again is not None
    assert again.next_run_at == earlier
