"""The work part of the store per company: receipts, the worker's claim, the inbox, jobs and their
runs, subscriptions. Two (or three) companies share one database; a handle scoped to one never
reads or writes another's rows, and the looks across companies name exactly the ones with work."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from sync.receipt_model import Submission, parse_submission
from sync.states import InboxState, ReceiptStatus
from sync.store import inbox, ops_queries, receipt_work, receipts, subscriptions
from sync.store import jobs as job_store
from sync.store.companies import add_company
from sync.store.db import Database
from sync.store.partners import create_partner
from tests.receipts_api.conftest import receipt_body

pytestmark = pytest.mark.anyio
NOW = "2024-05-01T12:00:00.000000+00:00"
LATER = "2999-01-01T00:00:00.000000+00:00"
ANCIENT = "2000-01-01T00:00:00.000000+00:00"


@pytest.fixture
async def db(database: Database) -> AsyncIterator[Database]:
    """A database with the companies `default`, `beta` and `gamma`, on each engine."""
    for name in ("Beta", "Gamma"):
        await add_company(database, name, f"{name.lower()}@example.do", b"sealed")
    return database


def _submission() -> Submission:
    return parse_submission(receipt_body(), max_attachment_bytes=4096)


async def _receipt(db: Database, partner_id: str, key: str = "k") -> str:
    receipt_id, created = await receipts.insert_receipt(
        db, partner_id=partner_id, idempotency_key=key, submission=_submission())
    assert created
    return receipt_id


def _delivery(resource_id: str, subject: str = "edit-client") -> bytes:
    return json.dumps({"subject": subject, "message": {"client": {"id": resource_id}}}).encode()


async def test_the_same_partner_and_key_in_two_companies_are_two_receipts(db: Database) -> None:
    """An idempotency key is the partner's within one company: the same key in another company
    stores a second receipt, each read only through its own company (or by id, naming it)."""
    partner, _ = await create_partner(db, "acme")
    beta = db.for_company("beta")
    mine, theirs = await _receipt(db, partner.id), await _receipt(beta, partner.id)
    assert mine != theirs
    assert await receipts.insert_receipt(
        beta, partner_id=partner.id, idempotency_key="k", submission=_submission()
    ) == (theirs, False)
    assert await receipts.get_receipt(db, theirs, None) is None
    assert await receipts.get_status(db, theirs) is None
    record = await receipts.get_receipt(beta, theirs, partner.id)
    assert record is not None
    assert record.company_id == "beta"
    found = await receipts.get_receipt_any_company(db, theirs)
    assert found is not None
    assert found.company_id == "beta"
    assert [r.id for r in await receipts.list_receipts(db)] == [mine]
    assert [r.id for r in await receipts.list_receipts(beta, partner_id=partner.id)] == [theirs]
    assert await receipts.partners_of(db, [theirs]) == set()
    assert await receipts.get_attachment(db, theirs) is None


async def test_a_claim_takes_only_its_own_company_receipts(db: Database) -> None:
    """A worker claiming for one company never gets another's ready receipt; another company's
    handle cannot renew, retry or read the steps of a receipt that is not its own."""
    partner, _ = await create_partner(db, "acme")
    beta = db.for_company("beta")
    theirs = await _receipt(beta, partner.id)
    assert not await receipt_work.any_ready(db)
    assert await receipt_work.claim_next(db, owner="w", lease_s=60) is None
    mine = await _receipt(db, partner.id, "other")
    claimed = await receipt_work.claim_next(db, owner="w", lease_s=60)
    assert claimed is not None
    assert claimed.receipt_id == mine
    assert await receipt_work.claim_next(db, owner="w", lease_s=60) is None
    taken = await receipt_work.claim_next(beta, owner="w", lease_s=60)
    assert taken is not None
    assert taken.receipt_id == theirs
    assert not await receipt_work.renew_lease(db, theirs, owner="w", lease_s=60)
    assert await receipt_work.renew_lease(beta, theirs, owner="w", lease_s=60)
    assert await receipt_work.foreign_lease_owners(db.for_company("gamma"), "x") == []
    await beta.execute("UPDATE receipts SET status = 'failed' WHERE id = ?", (theirs,))
    assert not await ops_queries.retry_failed_receipt(db, theirs)
    assert await ops_queries.retry_failed_receipt(beta, theirs)


async def test_the_step_log_writes_only_for_its_own_company(db: Database) -> None:
    """A step log on the wrong company's handle finds the receipt not held: nothing is written."""
    partner, _ = await create_partner(db, "acme")
    beta = db.for_company("beta")
    theirs = await _receipt(beta, partner.id)
    assert await receipt_work.claim_next(beta, owner="w", lease_s=60) is not None
    with pytest.raises(receipt_work.LeaseLost):
        await receipt_work.StepLog(db, theirs, "w").attempting("supplier")
    assert not await receipt_work.StepLog(db, theirs, "w").complete()
    log = receipt_work.StepLog(beta, theirs, "w")
    await log.attempting("supplier")
    assert await receipt_work.load_steps(db, theirs) == {}
    assert list(await receipt_work.load_steps(beta, theirs)) == ["supplier"]
    assert await log.complete()


async def test_the_companies_with_ready_work_are_exactly_those_with_a_ready_receipt(
    db: Database,
) -> None:
    """Listed: a company with a queued receipt due now. Not listed: one whose only receipts are
    final or due later, and one with none."""
    partner, _ = await create_partner(db, "acme")
    gamma = db.for_company("gamma")
    assert await receipt_work.companies_with_ready_work(gamma) == []
    await _receipt(gamma, partner.id)
    later = await _receipt(db, partner.id)
    done = await _receipt(db, partner.id, "done")
    await db.execute("UPDATE receipts SET next_attempt_at = ? WHERE id = ?", (LATER, later))
    await db.execute("UPDATE receipts SET status = ? WHERE id = ?",
                     (ReceiptStatus.COMPLETED, done))
    assert await receipt_work.companies_with_ready_work(db) == ["gamma"]
    await db.execute("UPDATE receipts SET next_attempt_at = ? WHERE id = ?", (ANCIENT, later))
    assert await receipt_work.companies_with_ready_work(db) == ["default", "gamma"]


async def test_inbox_groups_stay_with_their_company(db: Database) -> None:
    """Deliveries about the same Alegra id in two companies are two groups, each claimed,
    settled, counted and listed only through its own company."""
    beta = db.for_company("beta")
    ids = await inbox.write_batch(db, [
        inbox.NewDelivery(_delivery("7"), 0),
        inbox.NewDelivery(_delivery("7"), 0, "beta"),
        inbox.NewDelivery(_delivery("8"), 0, "beta"),
        inbox.NewDelivery(b"{oops", 0, "beta"),
        inbox.NewHandshake(0, "beta"),
    ])
    mine, theirs, other, bad, _ = ids
    quiet = datetime.now(UTC).isoformat()
    assert await inbox.due_groups(db, quiet_before=quiet, waited_before=quiet, limit=10) == [
        ("client", "7")]
    assert await inbox.due_groups(beta, quiet_before=quiet, waited_before=quiet, limit=10) == [
        ("client", "7"), ("client", "8")]
    group = await inbox.claim_group(db, "client", "7")
    assert [row.id for row in group.rows] == [mine]
    assert await inbox.skip_unusable(db) == []
    assert [row.id for row in await inbox.skip_unusable(beta)] == [bad]
    await inbox.mark_done(db, [theirs, other], state=InboxState.APPLIED, note=None)
    assert await inbox.state_counts(beta) == {"received": 2, "skipped": 1}
    assert await inbox.get_row(db, theirs) is None
    event = await inbox.get_row(beta, theirs)
    assert event is not None
    assert (event.company_id, event.state) == ("beta", InboxState.RECEIVED)
    assert [e.id for e in await ops_queries.events_page(db)] == [mine]
    assert not await ops_queries.replay_event(db, bad)
    assert await ops_queries.last_handshake_at(db) is None
    assert await ops_queries.last_handshake_at(beta) is not None


async def test_a_burst_in_one_company_does_not_hold_back_another(db: Database) -> None:
    """Waiting for quiet is per company: deliveries still arriving for one company leave
    another's, quiet since, due."""
    beta = db.for_company("beta")
    await inbox.write_batch(db, [inbox.NewDelivery(_delivery("1"), 0)])
    between = datetime.now(UTC).isoformat()
    await inbox.write_batch(db, [inbox.NewDelivery(_delivery("2"), 0, "beta")])
    assert await inbox.due_groups(db, quiet_before=between, waited_before=ANCIENT,
                                  limit=10) == [("client", "1")]
    assert await inbox.due_groups(beta, quiet_before=between, waited_before=ANCIENT,
                                  limit=10) == []


async def test_the_companies_with_due_events_are_exactly_those_with_work_waiting(
    db: Database,
) -> None:
    """Listed: a company with a delivery received, or failed and due again. Not listed: one whose
    only deliveries are settled or wait for a later retry."""
    beta, gamma = db.for_company("beta"), db.for_company("gamma")
    assert await inbox.companies_with_due_events(db) == []
    [settled, waiting, due] = await inbox.write_batch(db, [
        inbox.NewDelivery(_delivery("1"), 0),
        inbox.NewDelivery(_delivery("2"), 0, "beta"),
        inbox.NewDelivery(_delivery("3"), 0, "gamma"),
    ])
    await inbox.mark_done(db, [settled], state=InboxState.APPLIED, note=None)
    await inbox.mark_retry(beta, [(waiting, InboxState.FAILED, LATER)], error="boom")
    await inbox.mark_retry(gamma, [(due, InboxState.FAILED, ANCIENT)], error="boom")
    assert await inbox.companies_with_due_events(db) == ["gamma"]


async def test_jobs_and_their_runs_stay_with_their_company(db: Database) -> None:
    """Two companies' jobs of the same name have their own schedule, holder, checkpoint, runs
    and drift reports."""
    beta = db.for_company("beta")
    assert await job_store.ensure_jobs(db, {"backfill": NOW}) == ["backfill"]
    assert await job_store.ensure_jobs(beta, {"backfill": LATER}) == ["backfill"]
    assert await job_store.claim_job(db, "backfill", owner="h:1", lease_until=LATER,
                                     holder_gone=lambda _: False) is None
    assert await job_store.claim_job(beta, "backfill", owner="h:2", lease_until=LATER,
                                     holder_gone=lambda _: False) is None
    await job_store.save_checkpoint(beta, "backfill", {"phase": "taxes", "start": 0})
    run_id = await job_store.start_run(db, "backfill")
    await job_store.finish_run(db, run_id, "backfill", owner="h:1", outcome="success",
                               duration_s=1.0, error=None, next_run_at=None, detail={})
    await job_store.save_drift_report(beta, None, {"complete": True, "missing": 2, "extra": 0,
                                                   "different": 0})
    [mine], [theirs] = await job_store.job_states(db), await job_store.job_states(beta)
    assert (mine.last_outcome, mine.next_run_at, mine.running, mine.checkpoint) == (
        "success", None, False, None)
    assert (theirs.last_outcome, theirs.owner, theirs.checkpoint) == (
        None, "h:2", {"phase": "taxes", "start": 0})
    assert theirs.next_run_at == datetime.fromisoformat(LATER)
    assert [run.id for run in await job_store.recent_runs(db, "backfill")] == [run_id]
    assert await job_store.recent_runs(beta, "backfill") == []
    assert await ops_queries.last_successes(beta) == {}
    assert await job_store.last_drift_report(db) is None
    assert await ops_queries.drift_totals(beta) == {"missing": 2, "extra": 0, "different": 0}


async def test_subscriptions_stay_with_their_company(db: Database) -> None:
    """The same event has one subscription row per company, each updated only through its own."""
    beta = db.for_company("beta")
    await subscriptions.record_present(db, "new-client", "s1", 0, created=True, recreated=False)
    await subscriptions.record_missing(beta, "new-client")
    [mine], [theirs] = (await subscriptions.load_states(db)).values(), (
        await subscriptions.load_states(beta)).values()
    assert (mine["alegra_id"], mine["present"]) == ("s1", 1)
    assert (theirs["alegra_id"], theirs["present"]) == (None, 0)
    await subscriptions.record_removed(beta, "new-client")
    [still] = (await subscriptions.load_states(db)).values()
    assert (still["alegra_id"], still["present"]) == ("s1", 1)
    assert [row["event"] for row in await ops_queries.subscription_rows(beta)] == ["new-client"]
