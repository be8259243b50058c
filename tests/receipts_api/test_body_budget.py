"""MAX_BODY_BYTES_IN_FLIGHT: receipt bodies past the web process's budget wait outside (503).

The real app under uvicorn on loopback, with a budget of two receipt bodies. Two receipts whose
bodies are held half-sent fill it; a third (declared length or chunked) is answered 503 with
`Retry-After` and stores nothing, while a webhook delivery is still stored at once. Once the two
finish, both are stored and the third goes through on its retry.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from receiver.app import create_app
from receiver.body_budget import BodyBudget
from sync.settings import Settings, load_settings
from sync.store.db import Database
from sync.store.partners import create_partner
from sync.webhook_tokens import make_token
from tests.receipts_api.conftest import receipt_body
from tests.support.servers import ServerThread
from tests.webhooks.conftest import delivery

pytestmark = pytest.mark.anyio
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 20_000


def body(n: int) -> bytes:
    """A receipt with a 20 kB image: about 27 kB of JSON."""
    attachment = {"filename": "r.png", "content_type": "image/png",
                  "data_base64": base64.b64encode(PNG).decode()}
    return json.dumps(receipt_body(ncf=f"B01{n:08d}", attachment=attachment)).encode()


SIZE = len(body(1))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(env_file=None, environ={
        "SECRET_KEY": "x" * 32, "DATABASE_URL": f"sqlite:///{tmp_path}/budget.db",
        "MAX_ATTACHMENT_BYTES": "100000", "MAX_BODY_BYTES_IN_FLIGHT": str(2 * SIZE + SIZE // 2),
    })


@dataclass
class Served:
    url: str
    app: Starlette

    def budget(self) -> BodyBudget | None:
        return getattr(self.app.state, "body_budget", None)


@pytest.fixture
def server(settings: Settings) -> Iterator[Served]:
    app = create_app(settings)
    running = ServerThread(app).start()
    try:
        yield Served(running.url, app)
    finally:
        running.stop()


async def partner_key(settings: Settings) -> str:
    db = await Database.open(settings.database_path)
    try:
        return (await create_partner(db, "acme"))[1]
    finally:
        await db.close()


async def stored(settings: Settings) -> int:
    db = await Database.open(settings.database_path)
    try:
        return int(await db.scalar("SELECT count(*) FROM receipts"))
    finally:
        await db.close()


async def held_back(raw: bytes, gate: asyncio.Event) -> AsyncIterator[bytes]:
    """A body sent in two parts, the second once `gate` is set."""
    yield raw[:1000]
    await gate.wait()
    yield raw[1000:]


async def at_once(raw: bytes) -> AsyncIterator[bytes]:
    """A body sent chunked (no Content-Length)."""
    yield raw


async def budget_holds(server: Served, size: int) -> None:
    while (budget := server.budget()) is None or budget.in_use < size:
        await asyncio.sleep(0.01)


async def test_bodies_past_the_budget_get_503_and_webhooks_still_go_through(
    settings: Settings, server: Served
) -> None:
    """Two bodies in flight fill the budget: a third, declared or chunked, gets 503 with
    Retry-After and stores nothing; a webhook is stored; the two then succeed, and so does
    the third when retried."""
    key = await partner_key(settings)

    def headers(idem: str, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}", "Idempotency-Key": idem,
                "Content-Type": "application/json", **extra}

    gate = asyncio.Event()
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        slow = [asyncio.create_task(client.post(
            "/v1/receipts", content=held_back(body(n), gate),
            headers=headers(f"slow-{n}", **{"Content-Length": str(SIZE)}))) for n in (1, 2)]
        await asyncio.wait_for(budget_holds(server, 2 * SIZE), 10)

        declared = await client.post("/v1/receipts", content=body(3), headers=headers("third"))
        chunked = await client.post("/v1/receipts", content=at_once(body(4)),
                                    headers=headers("fourth"))
        hook = await client.post(f"/webhooks/alegra/{make_token(settings.secret_keys)}",
                                 content=delivery("new-client", "client", id="7"))
        assert await stored(settings) == 0

        gate.set()
        answers = await asyncio.gather(*slow)
        retried = await client.post("/v1/receipts", content=body(3), headers=headers("third"))

    for refused in (declared, chunked):
        assert refused.status_code == 503, refused.text
        assert refused.headers["Retry-After"] == "1"
        assert refused.json()["error"]["code"] == "busy"
    assert hook.status_code == 200, hook.text
    assert [a.status_code for a in answers] == [202, 202]
    assert retried.status_code == 202
    assert await stored(settings) == 3
    assert (budget := server.budget()) is not None
    assert budget.in_use == 0


async def test_a_body_larger_than_the_whole_budget_is_served_alone(
    tmp_path: Path,
) -> None:
    """With a budget smaller than one receipt, a receipt still goes through when it is alone."""
    settings = load_settings(env_file=None, environ={
        "SECRET_KEY": "x" * 32, "DATABASE_URL": f"sqlite:///{tmp_path}/alone.db",
        "MAX_ATTACHMENT_BYTES": "100000", "MAX_BODY_BYTES_IN_FLIGHT": "1000",
    })
    key = await partner_key(settings)
    running = ServerThread(create_app(settings)).start()
    try:
        async with httpx.AsyncClient(base_url=running.url, timeout=30) as client:
            answer = await client.post("/v1/receipts", content=body(1), headers={
                "Authorization": f"Bearer {key}", "Idempotency-Key": "alone",
                "Content-Type": "application/json"})
    finally:
        running.stop()
    assert answer.status_code == 202, answer.text


def test_the_budget_counts_what_is_held_and_refuses_only_past_it() -> None:
    """Bytes are taken up to the limit; past it only a request holding all of them may grow."""
    budget = BodyBudget(limit=100)
    assert budget.take(60, held=0)
    assert not budget.take(50, held=0)
    assert budget.take(40, held=0)
    assert not budget.take(1, held=40)
    budget.give_back(40)
    budget.give_back(60)
    assert budget.take(150, held=0)
    assert budget.take(10, held=150)
    assert budget.in_use == 160
