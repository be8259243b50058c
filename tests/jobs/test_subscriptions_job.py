"""Subscription health: a subscription Alegra dropped is re-created, logged, counted, and
followed by a reconciliation."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from receiver.app import create_app
from sync.alegra.client import AlegraClient
from sync.context import WorkerContext
from sync.jobs import schedule
from sync.jobs import subscriptions as health
from sync.settings import Settings
from sync.store import jobs as job_store
from sync.store.subscriptions import load_states
from sync.subscriptions import ensure_subscriptions
from sync.webhook_tokens import webhook_url
from tests.jobs.conftest import run_once, sim_settings, worker_context
from tests.support.company_rows import add_company_row
from tests.support.servers import RunningSimulator, ServerThread

pytestmark = pytest.mark.anyio


@pytest.fixture
def web(simulator: RunningSimulator, tmp_path: Path) -> Iterator[ServerThread]:
    """The real web app on loopback, where Alegra's handshakes and deliveries arrive."""
    server = ServerThread(create_app(sim_settings(simulator, tmp_path))).start()
    yield server
    server.stop()


@pytest.fixture
def settings(simulator: RunningSimulator, tmp_path: Path, web: ServerThread) -> Settings:
    return sim_settings(simulator, tmp_path, PUBLIC_URL=web.url)


async def test_a_dropped_subscription_comes_back_and_a_reconcile_is_asked_for(
    simulator: RunningSimulator, settings: Settings
) -> None:
    """After Alegra deletes the edit-client subscription, the health job re-creates it, logs
    `subscriptions.recreated`, counts it, and makes the reconciliation and the bills refresh due
    now."""
    async with worker_context(settings) as ctx:
        await job_store.ensure_jobs(ctx.db, {"reconcile": "2999-01-01T00:00:00+00:00",
                                             "bills": "2999-01-01T00:00:00+00:00"})
        assert (await ensure_subscriptions(ctx.alegra, ctx.db, settings)).ok
        assert await health.enabled(ctx)
        edit = next(s for s in simulator.state.snapshot()["subscriptions"]
                    if s["event"] == "edit-client")
        simulator.state.drop_subscription(edit["id"])
        with capture_logs() as logs:
            result = await run_once(ctx, schedule.SUBSCRIPTIONS, health.run)
        assert result.outcome == "success", result.error
        assert result.detail["recreated"] == ["edit-client"]
        events = {s["event"] for s in simulator.state.snapshot()["subscriptions"]}
        assert "edit-client" in events
        assert [e["event"] for e in logs if e["event"] == "subscriptions.recreated"] == [
            "subscriptions.recreated"]
        states = await load_states(ctx.db)
        assert states["edit-client"]["recreated_count"] == 1
        for name in (schedule.RECONCILE, schedule.BILLS):  # what the lost subscription missed
            job = await job_store.job_state(ctx.db, name)
            assert job is not None
            assert job.next_run_at is not None
            assert job.next_run_at <= datetime.now(UTC)


async def test_health_is_off_on_a_loopback_url_until_subscriptions_are_registered(
    ctx: WorkerContext,
) -> None:
    """A local run with nothing registered never asks Alegra to deliver to 127.0.0.1."""
    assert not await health.enabled(ctx)


async def test_the_health_job_works_on_its_own_companys_subscriptions(
    simulator: RunningSimulator, settings: Settings
) -> None:
    """For company acme the job re-creates acme's dropped subscription in acme's account at
    acme's URL, counts it in acme's rows, and makes acme's reconciliation due, not default's."""
    acme = simulator.add_account("acme@example.com", "acme-token-0123456789")
    later = "2999-01-01T00:00:00+00:00"
    async with worker_context(settings) as default_ctx:
        add_company_row(settings.database_path, "acme")
        await job_store.ensure_jobs(default_ctx.db, {"reconcile": later, "bills": later})
        client = AlegraClient(acme.base_url, acme.email, acme.token, default_ctx.budget,
                              backoff_base_s=0.01, backoff_cap_s=0.05)
        ctx = WorkerContext(settings, default_ctx.db.for_company("acme"), client,
                            default_ctx.budget, asyncio.Event(), company="acme")
        try:
            await job_store.ensure_jobs(ctx.db, {"reconcile": later, "bills": later})
            assert (await ensure_subscriptions(ctx.alegra, ctx.db, settings)).ok
            lost = next(s for s in acme.state.snapshot()["subscriptions"]
                        if s["event"] == "edit-client")
            acme.state.drop_subscription(lost["id"])
            result = await run_once(ctx, schedule.SUBSCRIPTIONS, health.run)
        finally:
            await client.aclose()
        assert result.outcome == "success", result.error
        assert result.detail["recreated"] == ["edit-client"]
        acme_url = webhook_url(settings.public_url, settings.secret_keys, company="acme")
        assert {s["url"] for s in acme.state.snapshot()["subscriptions"]} == {acme_url}
        assert simulator.state.snapshot()["subscriptions"] == []
        assert (await load_states(ctx.db))["edit-client"]["recreated_count"] == 1
        assert await load_states(default_ctx.db) == {}
        now = datetime.now(UTC).isoformat()
        for name in (schedule.RECONCILE, schedule.BILLS):
            assert (await job_store.job_state(ctx.db, name) or {})["next_run_at"] <= now
            assert (await job_store.job_state(default_ctx.db, name) or {})["next_run_at"] == later
