"""The worker's claims on real SQLite files: one holder per receipt, leases that expire, backoff."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sync.receipt_model import parse_submission
from sync.store import ops_queries, receipt_work, receipts
from sync.store.db import Database, _migration_files
from sync.store.partners import create_partner
from sync.store.receipt_work import StepLog
from tests.flow.conftest import receipt_body
from tests.support import schema

pytestmark = pytest.mark.anyio


async def _store(db: Database, count: int) -> list[str]:
    partner, _ = await create_partner(db, "acme")
    ids = []
    for n in range(count):
        submission = parse_submission(receipt_body(), max_attachment_bytes=1024)
        receipt_id, _ = await receipts.insert_receipt(
            db, partner_id=partner.id, idempotency_key=f"k{n}", submission=submission
        )
        ids.append(receipt_id)
    return ids


async def _status(db: Database, receipt_id: str) -> str | None:
    return await receipts.get_status(db, receipt_id)


async def test_two_workers_never_claim_the_same_receipt(database_target: Path | str) -> None:
    """Two connections (two worker processes) claiming at once share out the receipts."""
    path = database_target
    first, second = await Database.open(path), await Database.open(path)
    try:
        ids = await _store(first, 20)

        async def drain(db: Database, owner: str) -> list[str]:
            got = []
            while (claimed := await receipt_work.claim_next(db, owner=owner, lease_s=60)):
                got.append(claimed.receipt_id)
            return got

        a, b = await asyncio.gather(drain(first, "h:1:a"), drain(second, "h:2:b"))
        assert sorted(a + b) == sorted(ids)
        assert not set(a) & set(b)
    finally:
        await first.close()
        await second.close()


async def test_claimed_receipt_is_processing_and_counts_an_attempt(
    database_target: Path | str,
) -> None:
    """A claim moves the receipt to processing with the payload the web process stored."""
    db = await Database.open(database_target)
    [receipt_id] = await _store(db, 1)

    claimed = await receipt_work.claim_next(db, owner="h:1:a", lease_s=60)

    assert claimed is not None
    assert claimed.receipt_id == receipt_id
    assert claimed.attempts == 1
    assert claimed.payload["ncf"] == "B0100000001"
    assert await _status(db, receipt_id) == "processing"
    assert await receipt_work.claim_next(db, owner="h:2:b", lease_s=60) is None
    await db.close()


async def test_expired_lease_is_claimed_again(database_target: Path | str) -> None:
    """A crashed worker's receipt is taken over once its lease runs out, and not before."""
    db = await Database.open(database_target)
    [receipt_id] = await _store(db, 1)
    await receipt_work.claim_next(db, owner="h:1:a", lease_s=0.2)
    assert await receipt_work.claim_next(db, owner="h:2:b", lease_s=60) is None

    await asyncio.sleep(0.3)
    again = await receipt_work.claim_next(db, owner="h:2:b", lease_s=60)

    assert again is not None
    assert again.receipt_id == receipt_id
    assert again.attempts == 2
    assert not await StepLog(db, receipt_id, "h:1:a").complete()
    assert await StepLog(db, receipt_id, "h:2:b").complete()
    await db.close()


async def test_worker_never_claims_a_receipt_it_is_still_running(
    database_target: Path | str,
) -> None:
    """A receipt whose lease ran out while its own worker still runs it (renewals kept failing)
    is not claimed a second time by that worker, which would run the flow twice at once."""
    db = await Database.open(database_target)
    [receipt_id] = await _store(db, 1)
    await receipt_work.claim_next(db, owner="h:1:a", lease_s=0.1)
    await asyncio.sleep(0.2)

    assert await receipt_work.claim_next(
        db, owner="h:1:a", lease_s=60, running=[receipt_id]
    ) is None
    again = await receipt_work.claim_next(db, owner="h:1:a", lease_s=60)
    assert again is not None
    assert again.receipt_id == receipt_id
    await db.close()


async def test_dead_holder_is_taken_over_before_its_lease_ends(database_target: Path | str) -> None:
    """A holder named dead (killed on this host) gives up its receipt at once."""
    db = await Database.open(database_target)
    [receipt_id] = await _store(db, 1)
    await receipt_work.claim_next(db, owner="h:1:a", lease_s=600)

    assert await receipt_work.foreign_lease_owners(db, "h:2:b") == ["h:1:a"]
    again = await receipt_work.claim_next(db, owner="h:2:b", lease_s=60, dead_owners=["h:1:a"])

    assert again is not None
    assert again.receipt_id == receipt_id
    await db.close()


async def test_rescheduled_receipt_waits_for_its_time(database_target: Path | str) -> None:
    """A rescheduled receipt is queued with its error and is not claimed before next_attempt_at."""
    db = await Database.open(database_target)
    [receipt_id] = await _store(db, 1)
    await receipt_work.claim_next(db, owner="h:1:a", lease_s=60)
    error = {"step": "bill", "retryable": True, "message": "boom"}

    assert await StepLog(db, receipt_id, "h:1:a").reschedule(error, 0.3)
    assert await _status(db, receipt_id) == "queued"
    assert await receipt_work.claim_next(db, owner="h:1:a", lease_s=60) is None
    await asyncio.sleep(0.4)

    again = await receipt_work.claim_next(db, owner="h:1:a", lease_s=60)
    assert again is not None
    assert again.attempts == 2
    await db.close()


async def test_done_step_is_never_reopened(database_target: Path | str) -> None:
    """Once a step is done, marking it attempting or failing it again changes nothing."""
    db = await Database.open(database_target)
    [receipt_id] = await _store(db, 1)
    await receipt_work.claim_next(db, owner="h:1:a", lease_s=60)
    log = StepLog(db, receipt_id, "h:1:a")
    await log.attempting("bill")
    log.done("bill", outcome="created", alegra_id="7", detail=None)

    await log.attempting("bill")
    await log.fail({"message": "late"}, "bill")

    step = (await receipt_work.load_steps(db, receipt_id))["bill"]
    assert (step.state, step.outcome, step.alegra_id, step.attempts) == ("done", "created", "7", 1)
    await db.close()


async def test_lease_renewal_fails_once_taken_over(database_target: Path | str) -> None:
    """A worker whose receipt was taken over learns it on its next renewal."""
    db = await Database.open(database_target)
    [receipt_id] = await _store(db, 1)
    await receipt_work.claim_next(db, owner="h:1:a", lease_s=60)
    assert await receipt_work.renew_lease(db, receipt_id, owner="h:1:a", lease_s=60)

    await receipt_work.claim_next(db, owner="h:2:b", lease_s=60, dead_owners=["h:1:a"])

    assert not await receipt_work.renew_lease(db, receipt_id, owner="h:1:a", lease_s=60)
    await db.close()


async def test_step_log_commits_pending_results_with_the_next_commit_point(
    database_target: Path | str,
) -> None:
    """A `done` waits in memory until the next `attempting`, then both are committed together."""
    db = await Database.open(database_target)
    [receipt_id] = await _store(db, 1)
    await receipt_work.claim_next(db, owner="h:1:a", lease_s=60)
    log = receipt_work.StepLog(db, receipt_id, "h:1:a")

    log.done("supplier", outcome="found", alegra_id="7", detail={})
    assert await receipt_work.load_steps(db, receipt_id) == {}
    await log.attempting("bill")

    steps = await receipt_work.load_steps(db, receipt_id)
    assert (steps["supplier"].state, steps["supplier"].alegra_id) == ("done", "7")
    assert steps["bill"].state == "attempting"
    await db.close()


async def test_step_log_outcome_is_refused_once_the_receipt_is_not_ours(
    database_target: Path | str,
) -> None:
    """Completing a receipt another worker took over changes nothing and says so."""
    db = await Database.open(database_target)
    [receipt_id] = await _store(db, 1)
    await receipt_work.claim_next(db, owner="h:1:a", lease_s=60)
    await receipt_work.claim_next(db, owner="h:2:b", lease_s=60, dead_owners=["h:1:a"])

    assert not await receipt_work.StepLog(db, receipt_id, "h:1:a").complete()
    assert await receipts.get_status(db, receipt_id) == "processing"
    await db.close()


async def test_ready_check_agrees_with_claiming(database_target: Path | str) -> None:
    """The idle worker's read-only check sees a ready receipt, and nothing once it is claimed."""
    db = await Database.open(database_target)
    assert not await receipt_work.any_ready(db)
    await _store(db, 1)

    assert await receipt_work.any_ready(db)
    await receipt_work.claim_next(db, owner="h:1:a", lease_s=60)
    assert not await receipt_work.any_ready(db)
    assert await receipt_work.any_ready(db, dead_owners=["h:1:a"])
    await db.close()


async def test_step_log_refuses_to_mark_a_write_once_the_receipt_is_not_ours(
    database_target: Path | str,
) -> None:
    """A worker whose receipt was taken over may not start a write for it: nothing is committed."""
    db = await Database.open(database_target)
    [receipt_id] = await _store(db, 1)
    await receipt_work.claim_next(db, owner="h:1:a", lease_s=60)
    await receipt_work.claim_next(db, owner="h:2:b", lease_s=60, dead_owners=["h:1:a"])
    log = receipt_work.StepLog(db, receipt_id, "h:1:a")

    with pytest.raises(receipt_work.LeaseLost):
        await log.attempting("bill")
    assert await receipt_work.load_steps(db, receipt_id) == {}
    await db.close()


async def test_operator_retry_restarts_the_retry_window(database_target: Path | str) -> None:
    """A failed receipt two days old, retried by an operator, gets a fresh 24 h retry window
    (counted from the retry), not a single attempt before failing again."""
    db = await Database.open(database_target)
    [receipt_id] = await _store(db, 1)
    await db.execute(
        "UPDATE receipts SET status = 'failed', created_at = '2000-01-01T00:00:00+00:00'"
        " WHERE id = ?", (receipt_id,),
    )
    assert await ops_queries.retry_failed_receipt(db, receipt_id)

    claimed = await receipt_work.claim_next(db, owner="h:1:a", lease_s=60)

    assert claimed is not None
    assert claimed.created_at.startswith("2000-01-01")
    assert claimed.retried_at is not None
    assert claimed.window_start == claimed.retried_at  # the retry's time, not the arrival
    age = datetime.now(UTC) - datetime.fromisoformat(claimed.window_start)
    assert age.total_seconds() < 60
    await db.close()


async def test_receipts_failed_before_the_unknown_outcome_rule_are_brought_under_it(
    tmp_path: Path,
) -> None:
    """Migration 0501 (once 0101): a bill step failed by a retryable error or a lookup's error
    goes back to `attempting` (its bill may exist); one Alegra refused outright, or a local error,
    stays."""
    schema.build(tmp_path / "old.db", [m for m in _migration_files() if m[0] < 501])
    db = await Database.open(tmp_path / "old.db", migrate=False)
    await db.conn.execute("PRAGMA foreign_keys = OFF")  # steps alone: receipts do not matter
    errors = {"rcp_a": {"retryable": True, "method": "POST"},
              "rcp_b": {"retryable": False, "method": "GET", "status": 401},
              "rcp_c": {"retryable": False, "method": "POST", "status": 400},
              "rcp_d": {"kind": "FlowFailed"}}
    for receipt_id, error in errors.items():
        await db.execute(
            "INSERT INTO receipt_steps(receipt_id, step, state, detail, updated_at)"
            " VALUES (?, 'bill', 'failed', ?, '2024')", (receipt_id, json.dumps({"error": error})))
    assert (await db.migrate())[0] == 501
    rows = await db.fetchall("SELECT receipt_id, state FROM receipt_steps ORDER BY receipt_id")
    await db.close()
    assert [tuple(r) for r in rows] == [
        ("rcp_a", "attempting"), ("rcp_b", "attempting"), ("rcp_c", "failed"), ("rcp_d", "failed")]
