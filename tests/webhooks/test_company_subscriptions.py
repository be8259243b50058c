"""Subscriptions per company: each company's own Alegra account, URL, token and rows."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from receiver.app import create_app
from sync.alegra.budget import RateBudget
from sync.alegra.client import AlegraClient
from sync.settings import Settings
from sync.store.db import Database
from sync.subscriptions import (
    EVENTS,
    ensure_subscriptions,
    list_subscriptions_report,
    remove_subscriptions,
)
from sync.webhook_tokens import token_of_url, webhook_url
from tests.support.company_rows import add_company_row
from tests.support.servers import RunningSimulator, ServerThread
from tests.webhooks.conftest import NEW_KEY, make_settings, read_db

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def client_of(account: RunningSimulator) -> AsyncIterator[AlegraClient]:
    """A real client calling the simulator as `account`."""
    budget = RateBudget(account.config.rate_limit, account.config.window_s)
    client = AlegraClient(account.base_url, account.email, account.token, budget,
                          max_attempts=2, backoff_base_s=0.01, backoff_cap_s=0.05)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def web(tmp_path: Path) -> Iterator[ServerThread]:
    """The real app on a loopback port, on the database where the companies are."""
    server = ServerThread(create_app(make_settings(tmp_path))).start()
    yield server
    server.stop()


@pytest.fixture
def here(tmp_path: Path, web: ServerThread) -> Settings:
    return dataclasses.replace(make_settings(tmp_path, secret_key=NEW_KEY), public_url=web.url)


@pytest.fixture
async def store(here: Settings) -> AsyncIterator[Database]:
    database = await Database.open(here.database_path)
    add_company_row(here.database_path, "acme")
    yield database
    await database.close()


@pytest.fixture
def acme(simulator: RunningSimulator) -> RunningSimulator:
    """A second Alegra account in the same simulator: the company `acme`."""
    return simulator.add_account("acme@example.com", "acme-token-0123456789")


def urls(account: RunningSimulator) -> dict[str, str]:
    return {s["event"]: s["url"] for s in account.state.subscriptions.values()}


async def test_a_company_is_subscribed_at_its_own_url_in_its_own_account(
    simulator: RunningSimulator, acme: RunningSimulator, store: Database, here: Settings
) -> None:
    """Registering acme subscribes every event in acme's account at acme's URL; the default
    account is untouched, and only acme's subscription rows are written."""
    async with client_of(acme) as client:
        report = await ensure_subscriptions(client, store.for_company("acme"), here)
    assert report.ok, report.failed
    acme_url = webhook_url(here.public_url, [NEW_KEY], company="acme")
    assert urls(acme) == dict.fromkeys(EVENTS, acme_url)
    assert acme_url != webhook_url(here.public_url, [NEW_KEY])
    assert simulator.state.subscriptions == {}
    rows = read_db(here.database_path, "SELECT company_id, event, present FROM subscriptions")
    assert {(r["company_id"], r["event"], r["present"]) for r in rows} == {
        ("acme", e, 1) for e in EVENTS}


async def test_two_companies_keep_apart_subscriptions(
    simulator: RunningSimulator, acme: RunningSimulator, store: Database, here: Settings
) -> None:
    """Default and acme each get their own URL; registering one again keeps the other's as is,
    and removing acme's leaves default's subscriptions and rows."""
    async with client_of(simulator) as default_client, client_of(acme) as acme_client:
        assert (await ensure_subscriptions(default_client, store, here)).ok
        assert (await ensure_subscriptions(acme_client, store.for_company("acme"), here)).ok
        again = await ensure_subscriptions(default_client, store, here)
        assert (again.created, sorted(again.kept)) == ([], sorted(EVENTS))
        removed = await remove_subscriptions(acme_client, store.for_company("acme"), here)
    assert len(removed.deleted) == len(EVENTS)
    assert acme.state.subscriptions == {}
    assert urls(simulator) == dict.fromkeys(EVENTS, webhook_url(here.public_url, [NEW_KEY]))
    rows = read_db(here.database_path,
                   "SELECT company_id, present FROM subscriptions ORDER BY company_id")
    assert {(r["company_id"], r["present"]) for r in rows} == {("acme", 0), ("default", 1)}


async def test_another_companys_url_is_not_ours(
    acme: RunningSimulator, store: Database, here: Settings
) -> None:
    """In acme's account, a subscription at default's URL (or beta's) is judged not acme's:
    acme's register creates its own beside it, and acme's remove leaves it alone."""
    foreign = {
        "d": {"id": "d", "event": "new-client", "url": webhook_url(here.public_url, [NEW_KEY])},
        "b": {"id": "b", "event": "edit-client",
              "url": webhook_url(here.public_url, [NEW_KEY], company="beta")},
    }
    acme.state.subscriptions.update(foreign)
    async with client_of(acme) as client:
        listed = await list_subscriptions_report(client, here, company="acme")
        assert [(s.alegra_id, s.ours) for s in listed] == [("d", False), ("b", False)]
        report = await ensure_subscriptions(client, store.for_company("acme"), here)
        assert sorted(report.created) == sorted(EVENTS)
        assert report.deleted == []
        await remove_subscriptions(client, store.for_company("acme"), here)
    assert acme.state.subscriptions == foreign


async def test_listing_judges_for_the_company_asked(
    acme: RunningSimulator, store: Database, here: Settings
) -> None:
    """The same listing is "here, current" for acme and "not ours" for default."""
    async with client_of(acme) as client:
        await ensure_subscriptions(client, store.for_company("acme"), here)
        for_acme = await list_subscriptions_report(client, here, company="acme")
        for_default = await list_subscriptions_report(client, here)
    assert {(s.ours, s.current, s.key_index) for s in for_acme} == {(True, True, 0)}
    assert {(s.ours, s.current) for s in for_default} == {(False, False)}
    assert {token_of_url(s.url) for s in for_acme} == {
        token_of_url(webhook_url(here.public_url, [NEW_KEY], company="acme"))}
