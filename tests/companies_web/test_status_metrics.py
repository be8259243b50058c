"""`GET /v1/cache/status` and `/metrics` with several companies: per company, and every
company's at once for an admin without the header."""

from __future__ import annotations

import asyncio
import json

from sync import metrics
from sync.metrics import Recorder
from sync.store.db import Database
from tests.companies_web.conftest import World
from tests.ops.test_metrics import sample


def test_status_for_an_admin_without_the_header_lists_every_live_company(world: World) -> None:
    """Without `Alegra-Company`, the admin gets each live company's verdict and reasons (not
    the removed one's), and `trustworthy` only when every company's is."""
    body = world.get("/v1/cache/status").json()
    assert [c["company"] for c in body["companies"]] == ["acme-sa", "default", "globex-sa"]
    for company in body["companies"]:
        assert company["state"] == "active"
        assert isinstance(company["trustworthy"], bool)
        assert {r["code"] for r in company["reasons"]} >= {"worker_down"}
    assert body["trustworthy"] is False


def test_status_with_the_header_is_that_companys_own_answer(world: World) -> None:
    """With the header, the answer is the one-company body (no `companies` list)."""
    body = world.get("/v1/cache/status", company="globex-sa").json()
    assert "companies" not in body
    assert "company" not in body
    assert {"trustworthy", "reasons", "counts", "jobs", "worker"} <= set(body)


def test_a_company_whose_credentials_are_refused_says_so_in_its_status(world: World) -> None:
    """A company in `needs_attention` has the reason `company_needs_attention` with the
    stored reason; the other companies do not."""
    world.sql("UPDATE companies SET state = 'needs_attention', state_reason = 'Alegra answered"
              " 401' WHERE id = 'globex-sa'")
    listed = {c["company"]: c for c in world.get("/v1/cache/status").json()["companies"]}
    assert listed["globex-sa"]["state"] == "needs_attention"
    reasons = {r["code"]: r["message"] for r in listed["globex-sa"]["reasons"]}
    assert "401" in reasons["company_needs_attention"]
    for other in ("acme-sa", "default"):
        assert "company_needs_attention" not in {r["code"] for r in listed[other]["reasons"]}
    one = world.get("/v1/cache/status", company="globex-sa").json()
    assert "company_needs_attention" in {r["code"] for r in one["reasons"]}


def test_a_partner_key_gets_no_status(world: World) -> None:
    """The status stays admin-only: 403 for a partner key, with or without the header."""
    assert world.get("/v1/cache/status", "both").status_code == 403
    assert world.get("/v1/cache/status", "both", "acme-sa").status_code == 403


def test_metrics_label_per_company_series_with_each_live_company(world: World) -> None:
    """Per-company gauges carry `company`, one series per live company (none for the removed
    one); `company_needs_attention` is 1 for a refused company; the worker's heartbeat stays
    unlabelled."""
    world.sql("UPDATE companies SET state = 'needs_attention' WHERE id = 'acme-sa'")
    text = world.client.get("/metrics").text
    for company, refused in (("acme-sa", 1), ("globex-sa", 0), ("default", 0)):
        assert sample(text, "alegra_sync_company_needs_attention", company=company) == refused
        assert sample(text, "alegra_sync_receipts", company=company, status="queued") == 0
        assert sample(text, "alegra_sync_cache_rows", company=company, table="contacts",
                      state="live") == 0
    assert 'company="gone"' not in text
    assert "alegra_sync_worker_heartbeat_age_seconds{" not in text


def test_metrics_count_each_companys_own_rows(world: World) -> None:
    """The receipts and cache gauges of a company count its rows only."""
    world.seed_receipt("rcp_acme0000000000000000001", "both", "acme-sa")
    world.seed_receipt("rcp_acme0000000000000000002", "both", "acme-sa")
    world.seed_receipt("rcp_globex00000000000000001", "both", "globex-sa")
    world.seed_contact("7", "Ochoa", "globex-sa")
    text = world.client.get("/metrics").text
    assert sample(text, "alegra_sync_receipts", company="acme-sa", status="queued") == 2
    assert sample(text, "alegra_sync_receipts", company="globex-sa", status="queued") == 1
    assert sample(text, "alegra_sync_receipts", company="default", status="queued") == 0
    assert sample(text, "alegra_sync_cache_rows", company="globex-sa", table="contacts",
                  state="live") == 1
    assert sample(text, "alegra_sync_cache_rows", company="acme-sa", table="contacts",
                  state="live") == 0


def test_worker_counters_carry_the_company_they_were_counted_for(world: World) -> None:
    """Counts the worker flushes for a company are its series; one stored before counters had
    the label reads as `default`'s and adds up with the labelled ones; the latency histograms
    stay deployment-wide."""
    recorder = Recorder()
    recorder.inc("alegra_sync_receipts_processed", outcome="completed", company="acme-sa")
    recorder.inc("alegra_sync_receipts_processed", 2, outcome="completed")
    recorder.observe("alegra_sync_receipt_step_seconds", 0.2, step="bill", outcome="created")

    async def flush() -> None:
        db = await Database.open(world.path)
        try:
            await metrics.flush(db, recorder)
        finally:
            await db.close()

    asyncio.run(flush())
    world.sql("INSERT INTO metric_counters(name, labels, value, updated_at) VALUES (?, ?, 5,"
              " '2026-01-01')", ("alegra_sync_receipts_processed_total",
                                 json.dumps({"outcome": "completed"})))
    text = world.client.get("/metrics").text
    assert sample(text, "alegra_sync_receipts_processed_total", company="acme-sa",
                  outcome="completed") == 1
    assert sample(text, "alegra_sync_receipts_processed_total", company="default",
                  outcome="completed") == 7
    assert sample(text, "alegra_sync_receipt_step_seconds_count", step="bill",
                  outcome="created") == 1


def test_a_single_company_deployment_answers_as_before(single: World) -> None:
    """A deployment that never added a company needs the header nowhere: the admin's status
    is the one-company body, and listings answer without it."""
    status = single.get("/v1/cache/status").json()
    assert "companies" not in status
    assert {"trustworthy", "reasons", "counts"} <= set(status)
    for path in ("/v1/receipts", "/v1/events", "/v1/cache/contacts", "/v1/cache/taxes"):
        assert single.get(path).status_code == 200, path
    receipt_id = single.seed_receipt("rcp_default000000000000001", "solo", "default")
    assert single.client.get(f"/v1/receipts/{receipt_id}",
                             headers=single.headers("solo")).status_code == 200
