"""The notifier against a receiver on loopback that verifies every signature with
`standardwebhooks`: once each, in each receipt's order, retried with the same `webhook-id`,
410 disables, a rotated secret verifies with both, a slow endpoint holds up no other one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.routing import Route

from sync.jobs.retention import prune_notifications
from sync.notifications import endpoints, queue
from sync.notifications.delivery import Notifier, attempt_delivery, build_client
from sync.notifications.outbox import write_event
from sync.notifications.records import EventType
from sync.settings import Settings
from sync.store.db import Database
from sync.store.partners import create_partner
from tests.notifications.conftest import Receiver, notify_settings
from tests.support.servers import ServerThread

pytestmark = pytest.mark.anyio


@dataclass
class Setup:
    db: Database
    settings: Settings
    partner_id: str
    target: Path | str

    async def endpoint(self, receiver: Receiver, url: str | None = None) -> str:
        made = await endpoints.create_endpoint(
            self.db, self.settings, partner_id=self.partner_id, url=url or receiver.url,
            events=[])
        receiver.secrets.append(made.secret)
        return made.endpoint.id

    async def event(self, endpoint_ids: list[str], receipt_id: str | None,
                    event_type: EventType = EventType.RECEIPT_COMPLETED, n: int = 0) -> str:
        async with self.db.transaction() as conn:
            return await write_event(
                conn, partner_id=self.partner_id, endpoint_ids=endpoint_ids,
                event_type=event_type, data={"n": n}, company="default", receipt_id=receipt_id)

    async def states(self, endpoint_id: str) -> list[str]:
        rows = await self.db.fetchall("SELECT state FROM notification_deliveries WHERE"
                                      " endpoint_id = ? ORDER BY seq", (endpoint_id,))
        return [str(r[0]) for r in rows]


@pytest.fixture
async def setup(database_target: Path | str) -> AsyncIterator[Setup]:
    """A store on each engine (SQLite, PostgreSQL) with a partner."""
    settings = notify_settings(database_target)
    db = await Database.open(database_target)
    partner, _ = await create_partner(db, "acme")
    try:
        yield Setup(db, settings, partner.id, database_target)
    finally:
        await db.close()


async def until(check: Callable[[], Awaitable[bool] | bool], limit_s: float = 15.0) -> None:
    """Wait until `check()` holds (fails the test after `limit_s`)."""
    async with asyncio.timeout(limit_s):
        while True:
            done = check()
            if not isinstance(done, bool):
                done = await done
            if done:
                return
            await asyncio.sleep(0.02)


@pytest.fixture
async def notifier(setup: Setup) -> AsyncIterator[Notifier]:
    stopping = asyncio.Event()
    async with build_client() as client:
        running = Notifier(setup.settings, setup.db, client, 8, (0.2, 0.4, 0.6))
        task = asyncio.create_task(running.run(stopping))
        try:
            yield running
        finally:
            stopping.set()
            await task


async def test_each_event_arrives_once_in_its_receipts_order_with_a_valid_signature(
    setup: Setup, receiver: Receiver, notifier: Notifier,
) -> None:
    """Each event arrives once, in its receipt's order, with a valid signature."""
    endpoint = await setup.endpoint(receiver)
    ids = {}
    for n in range(5):
        for receipt in ("rcp_a", "rcp_b"):
            ids[(receipt, n)] = await setup.event([endpoint], receipt, n=n)
    await until(lambda: _states_are(setup, endpoint, ["delivered"] * 10))
    await asyncio.sleep(0.3)  # nothing more comes
    assert len(receiver.got) == 10
    assert receiver.bad_signatures == 0
    for receipt in ("rcp_a", "rcp_b"):
        theirs = [r for r in receiver.got if r.webhook_id in {ids[(receipt, n)] for n in range(5)}]
        assert [r.webhook_id for r in theirs] == [ids[(receipt, n)] for n in range(5)]
    assert set(await setup.states(endpoint)) == {"delivered"}


async def test_a_receiver_down_for_a_while_gets_the_retries_with_the_same_ids_in_order(
    setup: Setup, receiver: Receiver, notifier: Notifier,
) -> None:
    """A receiver down for a while gets the retries with the same ids in order."""
    refusals: list[str] = []

    def down_at_first(seen: Any) -> int:
        if len(refusals) < 3:
            refusals.append(seen.webhook_id)
            return 503
        return 200

    receiver.answer = down_at_first
    endpoint = await setup.endpoint(receiver)
    first = await setup.event([endpoint], "rcp_a", n=1)
    second = await setup.event([endpoint], "rcp_a", EventType.BILL_VOIDED, n=2)
    await until(lambda: _states_are(setup, endpoint, ["delivered", "delivered"]))
    assert refusals == [first, first, first]  # the second waited behind the first
    assert [r.webhook_id for r in receiver.got] == [first, second]
    [later, earlier] = await queue.list_deliveries(setup.db, endpoint)
    assert (earlier.attempts, earlier.last_status, earlier.state.value) == (4, 200, "delivered")
    assert later.attempts == 1


async def test_retries_used_up_end_failed_then_a_replay_since_delivers_them(
    setup: Setup, receiver: Receiver, notifier: Notifier,
) -> None:
    """Retries used up end `failed`; a replay of the failed ones since a time delivers them."""
    receiver.answer = lambda _: 500
    endpoint = await setup.endpoint(receiver)
    event_id = await setup.event([endpoint], "rcp_a")
    await until(lambda: _states_are(setup, endpoint, ["failed"]))
    [failed] = await queue.list_deliveries(setup.db, endpoint)
    assert (failed.attempts, failed.last_status) == (4, 500)  # 1 + the 3 retries
    assert failed.last_error is not None
    receiver.answer = lambda _: 204
    assert await queue.replay_failed_since(setup.db, endpoint, failed.created_at) == 1
    await until(lambda: len(receiver.got) == 1)
    assert receiver.got[0].webhook_id == event_id


async def test_410_gone_disables_the_endpoint_and_a_replay_enables_it(
    setup: Setup, receiver: Receiver, notifier: Notifier,
) -> None:
    """410 gone disables the endpoint and a replay enables it."""
    receiver.answer = lambda _: 410
    endpoint = await setup.endpoint(receiver)
    first = await setup.event([endpoint], "rcp_a")
    await setup.event([endpoint], "rcp_b")
    await until(lambda: _states_are(setup, endpoint, ["failed", "failed"]))
    found = await endpoints.get_endpoint(setup.db, setup.partner_id, endpoint)
    assert found is not None
    assert found.state.value == "disabled"
    assert "410" in (found.state_reason or "")
    receiver.answer = lambda _: 200
    [one_delivery] = [d for d in await queue.list_deliveries(setup.db, endpoint)
                      if d.event_id == first]
    assert await queue.replay_one(setup.db, endpoint, one_delivery.id)
    await until(lambda: len(receiver.got) == 1)
    enabled = await endpoints.get_endpoint(setup.db, setup.partner_id, endpoint)
    assert enabled is not None
    assert enabled.state.value == "enabled"


async def test_every_attempt_failing_for_the_disable_period_disables_the_endpoint(
    setup: Setup, receiver: Receiver,
) -> None:
    """Every attempt failing for the disable period disables the endpoint."""
    receiver.answer = lambda _: 500
    endpoint = await setup.endpoint(receiver)
    await setup.event([endpoint], "rcp_a")
    await setup.event([endpoint], "rcp_b")
    await setup.db.execute("UPDATE webhook_endpoints SET failing_since ="
                           " '2026-01-01T00:00:00+00:00' WHERE id = ?", (endpoint,))
    async with build_client() as client:
        [(delivery_id, _), _] = await queue.due(setup.db, limit=5)
        [outgoing] = await queue.take(setup.db, [delivery_id])
        settled = await queue.settle(setup.db, outgoing,
                                     await attempt_delivery(client, setup.settings, outgoing))
    assert settled.disabled is not None
    assert await setup.states(endpoint) == ["failed", "failed"]


async def test_a_rotated_secret_signs_beside_the_new_one(
    setup: Setup, receiver: Receiver, notifier: Notifier,
) -> None:
    """A rotated secret signs beside the new one."""
    endpoint = await setup.endpoint(receiver)
    old = receiver.secrets[0]
    rotated = await endpoints.rotate_secret(setup.db, setup.settings, setup.partner_id, endpoint)
    assert rotated is not None
    for n, secrets in enumerate(([old], [rotated.secret]), 1):  # either secret verifies
        receiver.secrets = secrets
        await setup.event([endpoint], None, EventType.PING)
        await until(lambda n=n: len(receiver.got) == n)  # type: ignore[misc]
    assert [r.signatures for r in receiver.got] == [2, 2]
    assert receiver.bad_signatures == 0
    await setup.db.execute("UPDATE webhook_endpoints SET old_secret_expires_at ="
                           " '2026-01-01T00:00:00+00:00' WHERE id = ?", (endpoint,))
    receiver.secrets = [old]
    await setup.event([endpoint], None, EventType.PING)  # the overlap is over: old no longer
    await until(lambda: receiver.bad_signatures >= 1)


async def test_a_slow_endpoint_holds_up_no_other_endpoint(
    setup: Setup, receiver: Receiver, notifier: Notifier,
) -> None:
    """A slow endpoint holds up no other endpoint."""
    slow = Receiver(delay_s=2.0)
    server = ServerThread(_app(slow)).start()
    slow.url = server.url + "/hook"
    try:
        slow_id = await setup.endpoint(slow)
        for n in range(12):
            await setup.event([slow_id], f"rcp_{n}")
        await asyncio.sleep(0.3)  # the slow endpoint's slots are all taken now
        fast_id = await setup.endpoint(receiver)
        await setup.event([fast_id], "rcp_fast")
        await until(lambda: len(receiver.got) == 1)
        assert len(slow.got) < 12  # the fast one did not wait for the slow one's backlog
    finally:
        server.stop()


async def test_a_private_address_is_refused_at_delivery_unless_allowed(
    setup: Setup, receiver: Receiver,
) -> None:
    """A private address is refused at delivery unless allowed."""
    endpoint = await setup.endpoint(receiver)
    await setup.event([endpoint], "rcp_a")
    strict = notify_settings(setup.target, PARTNER_WEBHOOKS_ALLOW_PRIVATE="false")
    async with build_client() as client:
        [(delivery_id, _)] = await queue.due(setup.db, limit=5)
        [outgoing] = await queue.take(setup.db, [delivery_id])
        attempt = await attempt_delivery(client, strict, outgoing)
    assert attempt.status is None
    assert "refused" in (attempt.error or "")
    assert receiver.got == []


def _app(rec: Receiver) -> Any:
    return Starlette(routes=[Route("/hook", rec.endpoint, methods=["POST"])])


async def _states_are(setup: Setup, endpoint: str, wanted: list[str]) -> bool:
    return await setup.states(endpoint) == wanted


async def test_retention_deletes_old_delivered_notifications_and_keeps_the_rest(
    setup: Setup, receiver: Receiver,
) -> None:
    """Delivered long ago: deleted with its event; pending and failed ones stay, however old."""
    endpoint = await setup.endpoint(receiver)
    ids = [await setup.event([endpoint], f"rcp_{n}") for n in range(3)]
    for event_id, state in zip(ids, ("delivered", "failed", "pending"), strict=True):
        await setup.db.execute(
            "UPDATE notification_deliveries SET state = ?,"
            " updated_at = '2026-01-01T00:00:00+00:00' WHERE event_id = ?", (state, event_id))
    await setup.db.execute(
        "UPDATE notification_events SET created_at = '2026-01-01T00:00:00+00:00'")
    now = datetime(2026, 3, 1, tzinfo=UTC)
    assert (await prune_notifications(setup.db, 30, now)).deleted == 1
    assert await setup.states(endpoint) == ["failed", "pending"]
    kept = await setup.db.fetchall("SELECT id FROM notification_events ORDER BY seq, id")
    assert {r[0] for r in kept} == set(ids[1:])
    assert (await prune_notifications(setup.db, 0, now + timedelta(days=999))).deleted == 0


async def test_with_many_workers_each_sends_only_its_leased_companies_deliveries(
    setup: Setup, receiver: Receiver,
) -> None:
    """A worker sends the deliveries of the companies it holds; the holder of `default` also
    sends pings and those of companies no longer live."""
    endpoint = await setup.endpoint(receiver)
    ours = await setup.event([endpoint], "rcp_a")  # company default
    async with setup.db.transaction() as conn:
        theirs = await write_event(conn, partner_id=setup.partner_id, endpoint_ids=[endpoint],
                                   event_type=EventType.RECEIPT_COMPLETED, data={},
                                   company="acme", receipt_id="rcp_b")
        gone = await write_event(conn, partner_id=setup.partner_id, endpoint_ids=[endpoint],
                                 event_type=EventType.RECEIPT_COMPLETED, data={},
                                 company="removed-co", receipt_id="rcp_c")
    ping = await setup.event([endpoint], None, EventType.PING)
    live = ("acme", "default")

    async def events(scope: queue.Scope) -> set[str]:
        ids = [d for d, _ in await queue.due(setup.db, limit=10, scope=scope)]
        return {o.event_id for o in await queue.take(setup.db, ids)}

    assert await events(queue.Scope(("acme",), live, rest=False)) == {theirs}
    assert await events(queue.Scope(("default",), live, rest=True)) == {ours, gone, ping}
    assert await events(queue.Scope((), live, rest=False)) == set()
    assert await events(queue.Scope(live, live, rest=True)) == {ours, theirs, gone, ping}
