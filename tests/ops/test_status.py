"""GET /v1/cache/status: the figures, and the trust verdict with the reason for each doubt."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sync.store.db import Database
from sync.store.subscriptions import record_missing, record_present
from tests.ops.conftest import OpsApi, Store, contact_json

EVENTS = ("new-client", "edit-client", "delete-client")
EDIT = {"subject": "edit-client", "message": {"client": {"id": "7"}}}


def _ago(seconds: float) -> str:
    return (datetime.now(UTC) - timedelta(seconds=seconds)).isoformat(timespec="microseconds")


def _subscribed(store: Store) -> None:
    async def work(db: Database) -> None:
        for n, event in enumerate(EVENTS):
            await record_present(db, event, str(n), 0, created=True, recreated=False)

    store.run(work)


def _healthy(store: Store) -> None:
    """Everything an operator would want: backfilled, reconciled, subscribed, worker alive."""
    store.heartbeat()
    store.job_run("backfill", "success")
    store.job_run("reconcile", "success", duration_s=4.25)
    _subscribed(store)


def _codes(status: dict[str, Any]) -> list[str]:
    return [reason["code"] for reason in status["reasons"]]


def test_a_fresh_database_is_not_trustworthy_and_says_why(ops: OpsApi) -> None:
    """No worker, no backfill, no subscriptions: untrustworthy, each cause named."""
    status = ops.get("/v1/cache/status").json()
    assert status["trustworthy"] is False
    assert _codes(status) == ["worker_down", "backfill_incomplete", "subscriptions_missing"]


def test_a_healthy_service_is_trustworthy(ops: OpsApi) -> None:
    """With every rule satisfied the verdict is true and no reason is given."""
    _healthy(ops.store)
    status = ops.get("/v1/cache/status").json()
    assert (status["trustworthy"], status["reasons"]) == (True, [])


def test_figures_cover_jobs_webhooks_inbox_receipts_and_budget(ops: OpsApi) -> None:
    """Counts, each job's last run, last webhook per event, backlog age and the budget are shown."""
    _healthy(ops.store)
    ops.store.contacts(contact_json("7", "Ochoa"), contact_json("8", "Sol"))
    ops.store.heartbeat(budget={"limit": 150, "remaining": 97, "waiting": {"RECEIPT": 0}})
    ops.store.deliveries({"subject": "edit-client", "message": {"client": {"id": "7"}}},
                         {"subject": "new-client", "message": {"client": {"id": "8"}}})
    status = ops.get("/v1/cache/status").json()
    assert status["counts"]["contacts"] == {"live": 2, "deleted": 0}
    reconcile = next(job for job in status["jobs"] if job["name"] == "reconcile")
    assert (reconcile["last_outcome"], reconcile["last_duration_s"]) == ("success", 4.25)
    assert reconcile["last_success_at"] is not None
    assert reconcile["next_run_at"] is not None
    subjects = {w["subject"]: w["deliveries"] for w in status["webhooks"]["by_subject"]}
    assert subjects == {"edit-client": 1, "new-client": 1}
    assert status["inbox"]["pending"] == 2
    assert 0 <= status["inbox"]["oldest_pending_age_s"] < 60
    assert status["worker"]["budget"]["remaining"] == 97
    assert status["worker"]["heartbeat_age_s"] < 60
    assert status["subscriptions"]["present"] == 3
    assert status["drift"] is None


def test_stale_heartbeat_and_old_backlog_are_reasons(ops: OpsApi) -> None:
    """A silent worker and a delivery waiting 10 minutes each make the cache untrustworthy."""
    _healthy(ops.store)
    ops.store.heartbeat(beat_at=_ago(120))
    (inbox_id,) = ops.store.deliveries(EDIT)
    ops.store.sql("UPDATE inbox SET received_at = ? WHERE id = ?", (_ago(600), inbox_id))
    assert _codes(ops.get("/v1/cache/status").json()) == ["worker_down", "inbox_backlog_old"]


def test_incomplete_reconcile_and_missing_subscription_are_reasons(ops: OpsApi) -> None:
    """A reconciliation cut short and a subscription Alegra deleted are both reported."""
    _healthy(ops.store)
    ops.store.job_run("reconcile", "incomplete")
    ops.store.run(lambda db: record_missing(db, "edit-client"))
    status = ops.get("/v1/cache/status").json()
    assert _codes(status) == ["reconcile_incomplete", "subscriptions_missing"]
    assert "edit-client" in status["reasons"][1]["message"]
    assert status["subscriptions"]["missing"] == 1


def test_old_full_scan_and_parked_events_are_reasons(ops: OpsApi) -> None:
    """A last complete scan older than 2 × RECONCILE_S, and parked deliveries since, are doubts."""
    _healthy(ops.store)
    long_ago = _ago(3 * ops.settings.reconcile_s)
    ops.store.sql("UPDATE job_runs SET finished_at = ? WHERE outcome = 'success'", (long_ago,))
    (inbox_id,) = ops.store.deliveries(EDIT)
    ops.store.fail_delivery(inbox_id, state="parked")
    assert _codes(ops.get("/v1/cache/status").json()) == [
        "full_scan_stale", "accounts_stale", "bills_stale", "events_parked",
    ]


def test_bills_not_read_again_in_time_are_a_reason_until_the_bills_job_runs(
    ops: OpsApi,
) -> None:
    """Bills last read by a backfill older than 2 × BILLS_REFRESH_S are a doubt (contacts and
    the chart fresh); a bills job run since clears it."""
    _healthy(ops.store)
    ops.store.job_run("accounts", "success")
    long_ago = _ago(3 * ops.settings.bills_refresh_s)
    ops.store.sql("UPDATE job_runs SET finished_at = ? WHERE name = 'backfill'", (long_ago,))
    assert _codes(ops.get("/v1/cache/status").json()) == ["bills_stale"]
    ops.store.job_run("bills", "success")
    assert _codes(ops.get("/v1/cache/status").json()) == []


def test_failed_receipts_are_listed_for_the_operator(ops: OpsApi) -> None:
    """The status names recent failed receipts with their error, to be retried."""
    ops.store.sql(
        "INSERT INTO receipts(id, partner_id, idempotency_key, body_hash, payload, status,"
        " receipt_date, error, created_at, updated_at) SELECT 'rcp_x', id, 'k', 'h', '{}',"
        " 'failed', '2024-05-01', '{\"step\": \"bill\", \"status\": 400}', '2024', '2024'"
        " FROM partners WHERE name = 'acme'")
    receipts = ops.get("/v1/cache/status").json()["receipts"]
    assert receipts["by_status"] == {"failed": 1}
    assert receipts["recent_failed"][0]["id"] == "rcp_x"
    assert receipts["recent_failed"][0]["error"] == {"step": "bill", "status": 400}
