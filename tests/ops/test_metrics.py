"""Metrics: the worker's counters reach the web's /metrics through the store, never backwards."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest

from receiver import prometheus
from sync import metrics
from sync.jobs import retention
from sync.metrics import Recorder, endpoint_label, step_label
from sync.store.db import Database
from sync.store.inbox import NewDelivery, mark_done, write_batch
from sync.store.subscriptions import record_present
from tests.ops.conftest import OpsApi, contact_json

DEFAULT = {"company": "default"}  # a deployment that never added a company


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one series in a text exposition, or None if absent."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        match = re.fullmatch(r"([a-z_]+)(?:\{(.*)\})? (\S+)", line)
        if match and match.group(1) == name:
            found = ",".join(sorted((match.group(2) or "").split(","))) if match.group(2) else ""
            if found == wanted:
                return float(match.group(3))
    return None


def test_endpoint_and_step_labels_are_bounded() -> None:
    """Ids and account names never become label values."""
    assert endpoint_label("/contacts/123") == "/contacts/{id}"
    assert endpoint_label("/bills/5f0c2e4a-1b2c/attachment?x=1") == "/bills/{id}/attachment"
    assert endpoint_label("/contacts/{id}") == "/contacts/{id}"
    assert step_label("account:gastos de oficina") == "account"


def test_unknown_family_or_labels_are_refused() -> None:
    """A typo in a metric name or its labels fails loudly instead of inventing a series."""
    recorder = Recorder()
    with pytest.raises(ValueError, match="not a counter"):
        recorder.inc("alegra_sync_receipts_processed", result="completed")
    with pytest.raises(ValueError, match="not a histogram"):
        recorder.observe("alegra_sync_nope", 1.0)


@pytest.mark.anyio
async def test_flush_adds_to_stored_values_and_clears_pending(tmp_path: Path) -> None:
    """Two flushes add up; a flush with nothing pending writes nothing."""
    db = await Database.open(f"{tmp_path}/m.db")
    try:
        recorder = Recorder()
        recorder.inc("alegra_sync_receipts_processed", outcome="completed")
        recorder.observe("alegra_sync_receipt_step_seconds", 0.3, step="bill", outcome="created")
        # the counter, the 9 cumulative buckets from le=0.5 up to +Inf, and the sum
        assert await metrics.flush(db, recorder) == 11
        below = await db.scalar("SELECT COUNT(*) FROM metric_counters WHERE labels LIKE ?",
                                ('%"le":"0.25"%',))
        assert below == 0
        recorder.inc("alegra_sync_receipts_processed", 2, outcome="completed")
        await metrics.flush(db, recorder)
        assert await metrics.flush(db, recorder) == 0
        total = await db.scalar("SELECT value FROM metric_counters WHERE name = ?",
                                ("alegra_sync_receipts_processed_total",))
        assert total == 3
    finally:
        await db.close()


@pytest.mark.anyio
async def test_a_failed_flush_keeps_the_increments(tmp_path: Path) -> None:
    """If the store refuses the write, nothing counted is lost: the next flush stores it."""
    db = await Database.open(f"{tmp_path}/m.db")
    recorder = Recorder()
    recorder.inc("alegra_sync_alegra_rate_limited", endpoint="/bills")
    await db.close()
    with pytest.raises(Exception):  # noqa: B017, PT011 -- whatever a closed connection raises
        await metrics.flush(db, recorder)
    db = await Database.open(f"{tmp_path}/m.db")
    try:
        assert await metrics.flush(db, recorder) == 1
    finally:
        await db.close()


def test_metrics_endpoint_renders_worker_counters_and_table_gauges(ops: OpsApi) -> None:
    """Counters flushed by the worker and gauges read from the tables appear in one scrape."""
    recorder = Recorder()
    recorder.inc("alegra_sync_alegra_requests", method="POST", endpoint="/bills", status="201")
    recorder.observe("alegra_sync_alegra_request_seconds", 0.2, method="POST", endpoint="/bills")
    recorder.inc("alegra_sync_alegra_rate_limited", endpoint="/contacts")
    ops.store.run(lambda db: metrics.flush(db, recorder))
    ops.store.heartbeat(budget={"limit": 150, "remaining": 120, "in_flight": 2,
                                "waiting": {"RECEIPT": 1, "EVENT": 0}})
    ops.store.contacts(contact_json("7", "Ochoa"))
    ops.store.deliveries({"subject": "edit-client", "message": {"client": {"id": "7"}}})
    ops.store.run(
        lambda db: record_present(db, "edit-client", "1", 0, created=True, recreated=True))
    ops.store.job_run("backfill", "success", duration_s=12.5)
    response = ops.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = response.text
    assert sample(text, "alegra_sync_alegra_requests_total", method="POST", endpoint="/bills",
                  status="201", **DEFAULT) == 1
    assert sample(text, "alegra_sync_alegra_request_seconds_count", method="POST",
                  endpoint="/bills") == 1
    assert sample(text, "alegra_sync_alegra_rate_limited_total", endpoint="/contacts",
                  **DEFAULT) == 1
    assert sample(text, "alegra_sync_rate_budget_remaining") == 120
    assert sample(text, "alegra_sync_rate_budget_waiting", priority="RECEIPT") == 1
    assert sample(text, "alegra_sync_inbox_events", state="received", **DEFAULT) == 1
    assert sample(text, "alegra_sync_webhook_deliveries_total") == 1
    assert sample(text, "alegra_sync_subscription_present", event="edit-client", **DEFAULT) == 1
    assert sample(text, "alegra_sync_subscription_recreated_total", event="edit-client",
                  **DEFAULT) == 1
    assert sample(text, "alegra_sync_job_last_duration_seconds", job="backfill", **DEFAULT) == 12.5
    assert sample(text, "alegra_sync_cache_rows", table="contacts", state="live", **DEFAULT) == 1
    for age, labels in (("worker_heartbeat_age_seconds", {}),
                        ("inbox_oldest_pending_age_seconds", DEFAULT)):
        value = sample(text, f"alegra_sync_{age}", **labels)
        assert value is not None, age  # present, and 0 (just now) is a valid age
        assert 0 <= value < 60, age


def test_metrics_expose_no_key_token_or_name(ops: OpsApi) -> None:
    """Partner keys, partner names and contact names never appear in /metrics."""
    ops.store.contacts(contact_json("7", "Ferretería Ochoa"))
    text = ops.client.get("/metrics").text
    for secret in (*ops.keys.values(), "acme", "Ochoa", str(ops.settings.secret_keys[0])):
        assert secret not in text


GROWING_TABLES = ("inbox", "receipts", "receipt_steps", "receipt_attachments", "job_runs",
                  "webhook_handshakes", "bill_claims")


@pytest.mark.anyio
async def test_every_query_of_a_scrape_searches_an_index_of_the_growing_tables(
    tmp_path: Path
) -> None:
    """No statement a scrape runs reads a whole table (or index) that grows with time: the
    inbox, receipts, job runs… are searched through an index over open work only, so a
    scrape costs the same with a thousand rows or a million."""
    path = tmp_path / "m.db"
    db = await Database.open(path)
    statements: list[str] = []
    try:
        await db.conn.set_trace_callback(statements.append)
        await prometheus.scrape(db, datetime.now(UTC))
    finally:
        await db.close()
    assert statements
    conn = sqlite3.connect(path)
    try:
        plans = {sql: [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}")]
                 for sql in statements}
    finally:
        conn.close()
    scans = {sql: detail for sql, details in plans.items() for detail in details
             if detail.split(" ")[:2] in (["SCAN", t] for t in GROWING_TABLES)}
    assert scans == {}


@pytest.mark.anyio
async def test_scrapes_within_the_max_age_share_one_computation(tmp_path: Path) -> None:
    """However many scrapers ask, the text is computed at most once per max age: within it
    they get the same text, after it a fresh one."""
    db = await Database.open(tmp_path / "m.db")
    now = [100.0]
    scrapes = prometheus.Scrapes(db, max_age_s=5.0, clock=lambda: now[0])
    try:
        first = await asyncio.gather(*(scrapes.text() for _ in range(4)))
        await write_batch(db, [NewDelivery(b"{}", 0)])
        now[0] += 4.9
        assert await scrapes.text() == first[0]
        assert len(set(first)) == 1
        assert scrapes.computed == 1
        now[0] += 0.1
        fresh = (await scrapes.text()).decode()
        assert scrapes.computed == 2
        assert sample(fresh, "alegra_sync_inbox_events", state="received", **DEFAULT) == 1
    finally:
        await db.close()


def test_a_scrape_is_answered_while_the_partner_connection_is_busy(ops: OpsApi) -> None:
    """A scrape never queues behind (or holds up) the connection partner requests use: it is
    answered while a transaction holds that connection."""
    db: Database = ops.client.app.state.db  # type: ignore[attr-defined]
    portal = ops.client.portal
    assert portal is not None
    entered, release = portal.call(asyncio.Event), portal.call(asyncio.Event)

    async def partner_write() -> None:
        async with db.transaction():
            entered.set()
            await release.wait()

    held = portal.start_task_soon(partner_write)
    pool = ThreadPoolExecutor(1)
    try:
        portal.call(entered.wait)
        # (a deadline only for a scrape that waits for the transaction: it would never end)
        scraped = pool.submit(ops.client.get, "/metrics").result(timeout=30)
    finally:
        portal.call(release.set)
        held.result()
        pool.shutdown()
    assert scraped.status_code == 200
    assert sample(scraped.text, "alegra_sync_inbox_events", state="received", **DEFAULT) == 0


def test_settled_deliveries_and_final_receipts_are_counters_not_table_counts(
    ops: OpsApi
) -> None:
    """Applied deliveries and completed receipts, which grow for ever, are counted as the worker
    settles them; the gauges show only open work (waiting, failed, parked)."""
    metrics.RECORDER.take()  # what other tests in this process counted
    (inbox_id,) = ops.store.deliveries({"subject": "edit-client",
                                        "message": {"client": {"id": "7"}}})
    ops.store.run(lambda db: mark_done(db, [inbox_id], state="applied", note=None))
    metrics.count_settled("applied", 1)
    metrics.count_receipt("completed")
    ops.store.run(metrics.flush)
    text = ops.client.get("/metrics").text
    assert sample(text, "alegra_sync_inbox_settled_total", state="applied", **DEFAULT) == 1
    assert sample(text, "alegra_sync_receipts_processed_total", outcome="completed",
                  **DEFAULT) == 1
    assert sample(text, "alegra_sync_inbox_events", state="applied", **DEFAULT) is None
    assert [sample(text, "alegra_sync_inbox_events", state=s, **DEFAULT)
            for s in ("received", "failed", "parked")] == [0, 0, 0]
    assert sample(text, "alegra_sync_receipts", status="queued", **DEFAULT) == 0


def test_status_metrics_and_events_still_answer_after_pruning(ops: OpsApi) -> None:
    """Once retention deleted old settled deliveries, /metrics still counts every delivery ever
    stored, /v1/cache/status and /v1/events show what is left, and the next delivery's id goes
    on from the last one."""
    body = {"subject": "edit-client", "message": {"client": {"id": "7"}}}
    ids = ops.store.deliveries(body, body, body)
    ops.store.sql("UPDATE inbox SET state = 'applied', received_at = ?, applied_at = ?"
                  " WHERE id IN (?, ?)", ("2020-01-01T00:00:00.000000+00:00",) * 2 + (*ids[:2],))
    pruned = ops.store.run(lambda db: retention.prune_inbox(db, 30, datetime.now(UTC)))
    assert pruned.deleted == 2
    text = ops.client.get("/metrics").text
    assert sample(text, "alegra_sync_webhook_deliveries_total") == 3
    assert sample(text, "alegra_sync_inbox_events", state="received", **DEFAULT) == 1
    status = ops.get("/v1/cache/status")
    assert status.status_code == 200
    assert status.json()["inbox"]["by_state"] == {"received": 1}
    assert [e["id"] for e in ops.get("/v1/events").json()["data"]] == [ids[2]]
    assert ops.store.deliveries(body) == [ids[2] + 1]
