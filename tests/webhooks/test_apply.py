"""Applying inbox rows against the simulator: the cache ends equal to Alegra, whatever arrives."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from typing import Any

import anyio
import pytest
from structlog.testing import capture_logs

from sync.alegra.client import AlegraClient
from sync.events.apply import RetryPolicy
from sync.events.lane import LaneConfig, run_round
from sync.store import inbox, ops_queries
from sync.store.contacts import get_cached_contact
from sync.store.db import Database
from tests.support.servers import RunningSimulator
from tests.webhooks.conftest import delivery

pytestmark = pytest.mark.anyio

FAST = LaneConfig(quiet_s=0.0, max_wait_s=0.0, poll_s=0.01,
                  retry=RetryPolicy(max_attempts=3, base_s=0.05, cap_s=0.1))


def as_received(body: bytes) -> inbox.NewDelivery:
    return inbox.NewDelivery(body, 0)


async def deliver(db: Database, subject: str, resource: str, **fields: Any) -> int:
    """Store a delivery exactly as the receiver does."""
    [inbox_id] = await inbox.write_batch(db, [as_received(delivery(subject, resource, **fields))])
    return inbox_id


async def settle(alegra: AlegraClient, db: Database, config: LaneConfig = FAST) -> int:
    """Run rounds until nothing is due; returns the Alegra fetches made."""
    fetches = 0
    while True:
        settled, made = await run_round(alegra, db, config)
        fetches += made
        if not settled:
            return fetches


async def assert_cache_matches(db: Database, sim: RunningSimulator, contact_id: str) -> None:
    """The cached contact is what Alegra has: same name and tax id if it exists, deleted if not."""
    row = await get_cached_contact(db, contact_id)
    alegra = sim.state.contacts.get(contact_id)
    if alegra is None:
        assert row is None or row["deleted"] == 1
        return
    assert row is not None
    assert row["deleted"] == 0
    assert row["name"] == alegra["name"]
    assert json.loads(row["raw"]) == alegra


async def states(db: Database) -> list[str]:
    rows = await db.fetchall("SELECT state FROM inbox ORDER BY id")
    return [r["state"] for r in rows]


async def test_duplicate_delivery_is_applied_once_equivalent(
    simulator: RunningSimulator, alegra: AlegraClient, db: Database
) -> None:
    """The same delivery twice costs one fetch and leaves the cache equal to Alegra."""
    contact = simulator.state.person_create_contact(name="Ferretería Ochoa", type=["provider"])
    for _ in range(2):
        await deliver(db, "new-client", "client", **contact)
    simulator.state.clear_log()
    assert await settle(alegra, db) == 1
    assert simulator.state.calls("GET", "/contacts") == 1
    await assert_cache_matches(db, simulator, contact["id"])
    assert await states(db) == ["applied", "applied"]
    await deliver(db, "new-client", "client", **contact)  # and once more, later
    await settle(alegra, db)
    await assert_cache_matches(db, simulator, contact["id"])


async def test_older_event_after_a_newer_one_changes_nothing(
    simulator: RunningSimulator, alegra: AlegraClient, db: Database
) -> None:
    """An edit applied, then the late create with the old name: the cache keeps Alegra's name."""
    created = dict(simulator.state.person_create_contact(name="Old Name SRL"))
    edited = simulator.state.person_edit_contact(created["id"], name="New Name SRL")
    await deliver(db, "edit-client", "client", **edited)
    await settle(alegra, db)
    await deliver(db, "new-client", "client", **created)
    await settle(alegra, db)
    await assert_cache_matches(db, simulator, created["id"])
    row = await get_cached_contact(db, created["id"])
    assert row is not None
    assert row["name"] == "New Name SRL"


async def test_reordered_create_edit_delete_ends_deleted(
    simulator: RunningSimulator, alegra: AlegraClient, db: Database
) -> None:
    """Delete, edit, create arriving backwards (each applied apart) end as Alegra: deleted."""
    created = dict(simulator.state.person_create_contact(name="Short Lived SRL"))
    await deliver(db, "new-client", "client", **created)  # cached while it existed
    await settle(alegra, db)
    edited = dict(simulator.state.person_edit_contact(created["id"], name="Renamed SRL"))
    simulator.state.person_delete_contact(created["id"])
    for subject, body in (("delete-client", {"id": created["id"]}),
                          ("edit-client", edited), ("new-client", created)):
        await deliver(db, subject, "client", **body)
        await settle(alegra, db)
        await assert_cache_matches(db, simulator, created["id"])
    row = await get_cached_contact(db, created["id"])
    assert row is not None
    assert row["deleted"] == 1


async def test_delete_arriving_before_create_leaves_no_live_contact(
    simulator: RunningSimulator, alegra: AlegraClient, db: Database
) -> None:
    """Created and deleted in Alegra, its delete delivered first: nothing live is cached."""
    created = dict(simulator.state.person_create_contact(name="Never Seen SRL"))
    simulator.state.person_delete_contact(created["id"])
    await deliver(db, "delete-client", "client", id=created["id"])
    await settle(alegra, db)
    await deliver(db, "new-client", "client", **created)
    await settle(alegra, db)
    await assert_cache_matches(db, simulator, created["id"])


async def test_edit_after_delete_keeps_it_deleted(
    simulator: RunningSimulator, alegra: AlegraClient, db: Database
) -> None:
    """A late edit for a contact Alegra has deleted does not bring it back."""
    created = dict(simulator.state.person_create_contact(name="Gone SRL"))
    await deliver(db, "new-client", "client", **created)
    await settle(alegra, db)
    simulator.state.person_delete_contact(created["id"])
    await deliver(db, "delete-client", "client", id=created["id"])
    await settle(alegra, db)
    await deliver(db, "edit-client", "client", **{**created, "name": "Gone SRL (edited)"})
    await settle(alegra, db)
    row = await get_cached_contact(db, created["id"])
    assert row is not None
    assert row["deleted"] == 1


async def test_forged_delivery_cannot_poison_the_cache(
    simulator: RunningSimulator, alegra: AlegraClient, db: Database
) -> None:
    """A payload naming a contact "EVIL" with another tax id leaves Alegra's version cached."""
    real = simulator.state.person_create_contact(
        name="Distribuidora Real", identification={"type": "RNC", "number": "131246796"},
        type=["provider"])
    await deliver(db, "edit-client", "client", id=real["id"], name="EVIL",
                  identification="101010101")
    await deliver(db, "new-client", "client", id="999999", name="EVIL ghost")
    await settle(alegra, db)
    row = await get_cached_contact(db, real["id"])
    assert row is not None
    assert (row["name"], row["tax_id"]) == ("Distribuidora Real", "131246796")
    assert await get_cached_contact(db, "999999") is None


async def test_burst_over_few_contacts_costs_one_fetch_each(
    simulator: RunningSimulator, alegra: AlegraClient, db: Database
) -> None:
    """500 deliveries about 20 contacts, in random order, cost at most 20 GETs."""
    contacts = [simulator.state.person_create_contact(name=f"Proveedor {n}") for n in range(20)]
    events = [(random.choice(["new-client", "edit-client"]), random.choice(contacts))
              for _ in range(500)]
    await inbox.write_batch(db, [as_received(delivery(subject, "client", **contact))
                                 for subject, contact in events])
    simulator.state.clear_log()
    await settle(alegra, db, LaneConfig(quiet_s=0.0, max_wait_s=0.0))
    assert simulator.state.calls("GET", "/contacts") <= 20
    assert set(await states(db)) == {"applied"}
    for contact in contacts:
        await assert_cache_matches(db, simulator, contact["id"])


async def test_failed_fetch_is_retried_with_backoff_then_applied(
    simulator: RunningSimulator, alegra: AlegraClient, db: Database
) -> None:
    """While Alegra fails the row is `failed` with a later next attempt; then it is applied."""
    contact = simulator.state.person_create_contact(name="Paciente SRL")
    inbox_id = await deliver(db, "new-client", "client", **contact)
    simulator.state.faults.update({"error_rate": 1.0, "error_status": 503})
    before = datetime.now(UTC).isoformat()
    await run_round(alegra, db, FAST)
    row = await inbox.get_row(db, inbox_id)
    assert row is not None
    assert (row.state, row.attempts) == ("failed", 1)
    assert row.next_attempt_at > before
    assert json.loads(row.last_error)["status"] == 503
    assert await run_round(alegra, db, FAST) == (0, 0)  # not due yet: no fetch
    simulator.state.faults.update({"error_rate": 0.0})
    for _ in range(50):
        await settle(alegra, db)
        row = await inbox.get_row(db, inbox_id)
        if row is not None and row.state == "applied":
            break
        await simulator_pause()
    assert row is not None
    assert row.state == "applied"
    await assert_cache_matches(db, simulator, contact["id"])


async def test_row_is_parked_after_max_attempts_and_logged(
    simulator: RunningSimulator, alegra: AlegraClient, db: Database
) -> None:
    """A row that keeps failing is parked (not dropped) after RetryPolicy.max_attempts; the
    operators' replay (POST /v1/events/{id}/replay) applies it once Alegra answers again."""
    contact = simulator.state.person_create_contact(name="Sin Suerte SRL")
    inbox_id = await deliver(db, "new-client", "client", **contact)
    simulator.state.faults.update({"error_rate": 1.0, "error_status": 500})
    with capture_logs() as logs:
        for _ in range(100):
            await run_round(alegra, db, FAST)
            row = await inbox.get_row(db, inbox_id)
            if row is not None and row.state == "parked":
                break
            await simulator_pause()
    assert row is not None
    assert (row.state, row.attempts) == ("parked", 3)
    events = [(e["event"], e.get("inbox_id")) for e in logs if e["event"].startswith("event.")]
    assert events == [("event.failed", inbox_id)] * 2 + [("event.parked", inbox_id)]
    assert await ops_queries.replay_event(db, inbox_id)
    simulator.state.faults.update({"error_rate": 0.0})
    await settle(alegra, db)
    row = await inbox.get_row(db, inbox_id)
    assert row is not None
    assert (row.state, row.attempts) == ("applied", 3)  # a replay keeps the attempts
    await assert_cache_matches(db, simulator, contact["id"])


async def test_unused_and_unusable_deliveries_are_skipped_without_fetching(
    simulator: RunningSimulator, alegra: AlegraClient, db: Database
) -> None:
    """Items, invoices, unknown event names and bodies we cannot read are skipped, never fetched."""
    await deliver(db, "new-item", "item", id="1")
    await deliver(db, "edit-invoice", "invoice", id="2")
    await deliver(db, "archive-client", "client", id="3")
    [bad] = await inbox.write_batch(db, [inbox.NewDelivery(b"{oops", 0)])
    simulator.state.clear_log()
    await settle(alegra, db)
    assert simulator.state.calls() == 0
    assert await states(db) == ["skipped"] * 4
    row = await inbox.get_row(db, bad)
    assert row is not None
    assert row.last_error == "shape malformed"


async def simulator_pause() -> None:
    await anyio.sleep(0.03)


async def test_a_burst_waits_for_quiet_or_the_longest_wait(db: Database) -> None:
    """While deliveries keep arriving nothing is due; once the inbox is quiet, or a resource has
    waited max_wait, it is."""
    await deliver(db, "edit-client", "client", id="1")
    await deliver(db, "edit-client", "client", id="2")
    newest = await db.scalar("SELECT MAX(received_at) FROM inbox")
    oldest = await db.scalar("SELECT MIN(received_at) FROM inbox")
    before_any = "2000-01-01T00:00:00+00:00"
    assert await inbox.due_groups(db, quiet_before=oldest, waited_before=before_any,
                                  limit=10) == []
    assert await inbox.due_groups(db, quiet_before=newest, waited_before=before_any,
                                  limit=10) == [("client", "1"), ("client", "2")]
    assert await inbox.due_groups(db, quiet_before=before_any, waited_before=oldest,
                                  limit=10) == [("client", "1")]


async def test_due_work_is_the_oldest_pending_whatever_the_backlog(db: Database) -> None:
    """With thousands of resources waiting, each round gets the oldest ones (a failed row whose
    retry is due and a replayed row included), and what lies past one round's reading comes
    in later rounds."""
    await inbox.write_batch(db, [as_received(delivery("edit-client", "client", id=str(n)))
                                 for n in range(600)])
    now = datetime.now(UTC).isoformat()
    await inbox.mark_retry(db, [(1, "failed", "2000-01-01T00:00:00+00:00"),
                                (2, "failed", "2999-01-01T00:00:00+00:00"),
                                (3, "parked", None)], error="boom")
    assert await ops_queries.replay_event(db, 3)
    due = await inbox.due_groups(db, quiet_before=now, waited_before=now, limit=4)
    assert due == [("client", "0"), ("client", "2"), ("client", "3"), ("client", "4")]
    seen: list[tuple[str, str]] = []
    while batch := await inbox.due_groups(db, quiet_before=now, waited_before=now, limit=10):
        seen += batch
        for resource, resource_id in batch:
            group = await inbox.claim_group(db, resource, resource_id)
            await inbox.mark_done(db, [r.id for r in group.rows], state="applied", note=None)
    assert sorted(int(i) for _, i in seen) == [n for n in range(600) if n != 1]
