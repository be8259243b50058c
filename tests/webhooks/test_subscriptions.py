"""Subscriptions against the simulator, with the real app answering Alegra's handshake."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from receiver.app import create_app
from sync.alegra import resources
from sync.alegra.client import AlegraClient
from sync.commands.webhooks import format_listing
from sync.settings import Settings
from sync.store.db import Database
from sync.subscriptions import (
    EVENTS,
    ensure_subscriptions,
    judge,
    list_subscriptions_report,
    plan,
    remove_subscriptions,
)
from sync.webhook_tokens import make_token, webhook_url
from tests.support.servers import RunningSimulator, ServerThread
from tests.webhooks.conftest import NEW_KEY, OLD_KEY, make_settings, read_db

pytestmark = pytest.mark.anyio
NEWER_KEY = "newer-secret-key-0123456789abcdef"


@pytest.fixture
def web(tmp_path: Path) -> Iterator[ServerThread]:
    """The real app on a loopback port, accepting URLs made with any of the three test keys."""
    settings = make_settings(tmp_path, secret_key=f"{NEWER_KEY},{NEW_KEY},{OLD_KEY}")
    server = ServerThread(create_app(settings)).start()
    yield server
    server.stop()


@pytest.fixture
def here(tmp_path: Path, web: ServerThread) -> Settings:
    """Settings of this deployment before any rotation: one key, PUBLIC_URL = the web server."""
    return dataclasses.replace(make_settings(tmp_path, secret_key=NEW_KEY), public_url=web.url)


@pytest.fixture
async def store(here: Settings) -> AsyncIterator[Database]:
    database = await Database.open(here.database_path)
    yield database
    await database.close()


def sim_urls(sim: RunningSimulator) -> dict[str, str]:
    return {s["event"]: s["url"] for s in sim.state.subscriptions.values()}


async def test_register_subscribes_every_event_at_our_url(
    simulator: RunningSimulator, alegra: AlegraClient, store: Database, here: Settings
) -> None:
    """All six events point at PUBLIC_URL/webhooks/alegra/<token>, each handshake answered."""
    report = await ensure_subscriptions(alegra, store, here)
    assert report.ok
    assert sorted(report.created) == sorted(EVENTS)
    assert sim_urls(simulator) == dict.fromkeys(EVENTS, webhook_url(here.public_url, [NEW_KEY]))
    assert len(read_db(here.database_path, "SELECT * FROM webhook_handshakes")) == len(EVENTS)
    rows = read_db(here.database_path, "SELECT * FROM subscriptions")
    assert {(r["event"], r["present"], r["url_key_index"]) for r in rows} == {
        (e, 1, 0) for e in EVENTS}


async def test_the_token_is_never_stored(
    simulator: RunningSimulator, alegra: AlegraClient, store: Database, here: Settings
) -> None:
    """The database file holds no URL token (only which key made it)."""
    await ensure_subscriptions(alegra, store, here)
    await store.close()
    data = b"".join(p.read_bytes() for p in here.database_path.parent.glob("sync.db*"))
    assert make_token([NEW_KEY]).encode() not in data


async def test_second_register_changes_nothing(
    simulator: RunningSimulator, alegra: AlegraClient, store: Database, here: Settings
) -> None:
    """Run again, nothing is created or deleted: no write reaches Alegra."""
    await ensure_subscriptions(alegra, store, here)
    before = dict(simulator.state.subscriptions)
    simulator.state.clear_log()
    report = await ensure_subscriptions(alegra, store, here)
    assert (report.created, report.deleted, report.failed) == ([], [], {})
    assert sorted(report.kept) == sorted(EVENTS)
    assert simulator.state.subscriptions == before
    assert simulator.state.calls("POST") + simulator.state.calls("DELETE") == 0


async def test_rotation_moves_subscriptions_to_the_new_key(
    simulator: RunningSimulator, alegra: AlegraClient, store: Database, here: Settings
) -> None:
    """With a new key first in SECRET_KEY, register subscribes the new URL and drops the old."""
    await ensure_subscriptions(alegra, store, here)
    rotated = dataclasses.replace(here, secret_keys=make_settings(
        here.database_path.parent, secret_key=f"{NEWER_KEY},{NEW_KEY}").secret_keys)
    report = await ensure_subscriptions(alegra, store, rotated)
    assert report.ok
    assert sorted(report.created) == sorted(EVENTS)
    assert sorted(d.event for d in report.deleted) == sorted(EVENTS)
    assert {d.key_index for d in report.deleted} == {1}
    assert sim_urls(simulator) == dict.fromkeys(
        EVENTS, webhook_url(here.public_url, [NEWER_KEY]))
    assert len(simulator.state.subscriptions) == len(EVENTS)


async def test_subscriptions_of_others_are_left_alone(
    simulator: RunningSimulator, alegra: AlegraClient, store: Database, here: Settings
) -> None:
    """Another integration's subscription survives register and remove, listed as not ours."""
    simulator.state.subscriptions["other"] = {
        "id": "other", "event": "new-client", "url": "https://crm.example.com/in/0123456789abcdefXYZ"}
    await ensure_subscriptions(alegra, store, here)
    listed = await list_subscriptions_report(alegra, here)
    assert [s.ours for s in listed if s.alegra_id == "other"] == [False]
    report = await remove_subscriptions(alegra, store, here)
    assert len(report.deleted) == len(EVENTS)
    assert list(simulator.state.subscriptions) == ["other"]
    rows = read_db(here.database_path, "SELECT present FROM subscriptions")
    assert {r["present"] for r in rows} == {0}


async def test_a_vanished_subscription_is_recreated_and_reported(
    simulator: RunningSimulator, alegra: AlegraClient, store: Database, here: Settings
) -> None:
    """Alegra deleting one subscription (after failed deliveries) is repaired and counted."""
    await ensure_subscriptions(alegra, store, here)
    lost = next(s["id"] for s in simulator.state.subscriptions.values()
                if s["event"] == "edit-client")
    simulator.state.drop_subscription(lost)
    report = await ensure_subscriptions(alegra, store, here)
    assert (report.created, report.recreated) == (["edit-client"], ["edit-client"])
    rows = read_db(here.database_path,
                   "SELECT recreated_count FROM subscriptions WHERE event = 'edit-client'")
    assert rows[0]["recreated_count"] == 1


async def test_unreachable_url_fails_with_alegras_reason(
    simulator: RunningSimulator, alegra: AlegraClient, store: Database, here: Settings
) -> None:
    """When the handshake cannot reach us, nothing is subscribed and the reason is reported."""
    nowhere = dataclasses.replace(here, public_url="http://127.0.0.1:9")
    report = await ensure_subscriptions(alegra, store, nowhere)
    assert sorted(report.failed) == sorted(EVENTS)
    assert all("HTTP 400" in reason for reason in report.failed.values())
    assert simulator.state.subscriptions == {}
    rows = read_db(here.database_path, "SELECT present, missing_since FROM subscriptions")
    assert len(rows) == len(EVENTS)
    assert all(r["missing_since"] for r in rows)


async def test_duplicate_rejection_counts_as_present(
    simulator: RunningSimulator, alegra: AlegraClient, store: Database, here: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """If a stale listing makes us create what exists, Alegra's refusal is taken as "present"."""
    await ensure_subscriptions(alegra, store, here)
    real_list = resources.list_subscriptions
    calls = {"n": 0}

    async def stale_then_real(client: AlegraClient, **kw: Any) -> list[dict[str, Any]]:
        calls["n"] += 1
        return [] if calls["n"] == 1 else await real_list(client, **kw)

    monkeypatch.setattr(resources, "list_subscriptions", stale_then_real)
    report = await ensure_subscriptions(alegra, store, here)
    assert report.ok
    assert report.created == []
    assert sorted(report.kept) == sorted(EVENTS)
    assert len(simulator.state.subscriptions) == len(EVENTS)


def test_plan_keeps_old_urls_until_replaced_and_ignores_others(settings: Settings) -> None:
    """Pure planning: create what the current URL lacks; stale = ours elsewhere; others kept."""
    keys = make_settings(settings.database_path.parent, secret_key=f"{NEWER_KEY},{NEW_KEY}")
    current = webhook_url(settings.public_url, [NEWER_KEY])
    old = webhook_url(settings.public_url, [NEW_KEY])
    listed = judge([
        {"id": "1", "event": "new-client", "url": current},
        {"id": "2", "event": "edit-client", "url": old},
        {"id": "3", "event": "edit-client", "url": "https://elsewhere.example/hook"},
        {"id": "4", "event": "new-client", "url": current.replace("http://", "")},
        {"event": "no-id", "url": current},
    ], keys)
    assert [(s.alegra_id, s.key_index, s.current) for s in listed] == [
        ("1", 0, True), ("2", 1, False), ("3", None, False), ("4", 0, True)]
    todo = plan(listed)
    assert "new-client" not in todo.create
    assert "edit-client" in todo.create
    assert [s.alegra_id for s in todo.stale] == ["2"]


def test_listing_shows_where_each_points_with_tokens_masked(settings: Settings) -> None:
    """`webhooks list` says here/old key/not this service and never prints a token."""
    keys = make_settings(settings.database_path.parent, secret_key=f"{NEWER_KEY},{NEW_KEY}")
    listed = judge([
        {"id": "1", "event": "new-client", "url": webhook_url(settings.public_url, [NEWER_KEY])},
        {"id": "2", "event": "edit-client", "url": webhook_url(settings.public_url, [NEW_KEY])},
        {"id": "3", "event": "new-bill", "url": "https://elsewhere.example/hook"},
    ], keys)
    text = format_listing(listed)
    assert "here, newest key" in text
    assert "old key 1" in text
    assert "not this service" in text
    assert make_token([NEWER_KEY]) not in text
    assert make_token([NEW_KEY]) not in text


async def test_recreation_counts_even_after_a_failed_attempt(
    simulator: RunningSimulator, alegra: AlegraClient, store: Database, here: Settings
) -> None:
    """A lost subscription whose first re-creation fails is still reported as re-created later."""
    await ensure_subscriptions(alegra, store, here)
    lost = next(s["id"] for s in simulator.state.subscriptions.values()
                if s["event"] == "delete-client")
    simulator.state.drop_subscription(lost)
    down = await ensure_subscriptions(alegra, store, dataclasses.replace(
        here, public_url=here.public_url.replace(here.public_url.rsplit(":", 1)[1], "9")))
    assert "delete-client" in down.failed
    back = await ensure_subscriptions(alegra, store, here)
    assert back.recreated == ["delete-client"]


async def test_removed_subscriptions_are_not_reported_as_recreated(
    simulator: RunningSimulator, alegra: AlegraClient, store: Database, here: Settings
) -> None:
    """After `webhooks remove`, registering again is a fresh start, not a repair."""
    await ensure_subscriptions(alegra, store, here)
    await remove_subscriptions(alegra, store, here)
    again = await ensure_subscriptions(alegra, store, here)
    assert sorted(again.created) == sorted(EVENTS)
    assert again.recreated == []
