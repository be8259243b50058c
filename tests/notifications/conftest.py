"""Notifications in-process: the receipt flow against the simulator (tests/flow's fixture), a
partner's endpoint, and a receiver on loopback that verifies every signature as a partner would
(`standardwebhooks`)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from standardwebhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sync.settings import Settings, load_settings
from sync.store.db import Database
from tests.support.databases import url_of
from tests.support.servers import ServerThread

CREDENTIALS_KEY = Fernet.generate_key().decode()


def notify_settings(database: Path | str, **extra: str) -> Settings:
    """Settings for a `database_target` (a SQLite file or a PostgreSQL URL), loopback allowed,
    short retries."""
    return load_settings(env_file=None, environ={
        "SECRET_KEY": "x" * 32, "DATABASE_URL": url_of(database),
        "CREDENTIALS_KEY": CREDENTIALS_KEY, "PARTNER_WEBHOOKS_ALLOW_PRIVATE": "true",
        "PARTNER_WEBHOOKS_RETRY_S": "0.2,0.4,0.6", **extra,
    })


async def events_of(db: Database, receipt_id: str | None = None) -> list[dict[str, Any]]:
    """The events written (bodies parsed), in the receipt's order."""
    sql = "SELECT id, body FROM notification_events"
    params: tuple[Any, ...] = ()
    if receipt_id is not None:
        sql += " WHERE receipt_id = ?"
        params = (receipt_id,)
    rows = await db.fetchall(sql + " ORDER BY receipt_id, seq", params)
    return [{"id": r["id"], **json.loads(r["body"])} for r in rows]


@dataclass
class Received:
    webhook_id: str
    body: dict[str, Any]
    signatures: int


@dataclass
class Receiver:
    """A partner's endpoint: verifies each delivery with `secrets`; `answer` picks the status."""

    secrets: list[str] = field(default_factory=list)
    answer: Callable[[Received], int] = lambda _: 204
    got: list[Received] = field(default_factory=list)
    bad_signatures: int = 0
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)
    delay_s: float = 0.0

    async def endpoint(self, request: Request) -> Response:
        raw = await request.body()
        headers = dict(request.headers)
        verified = None
        for secret in self.secrets:
            try:
                verified = Webhook(secret).verify(raw, headers)
                break
            except Exception:  # noqa: S112 -- try the next secret
                continue
        if verified is None:
            with self.lock:
                self.bad_signatures += 1
            return Response(status_code=401)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        seen = Received(headers["webhook-id"], verified,
                        len(headers["webhook-signature"].split(" ")))
        status = self.answer(seen)
        if 200 <= status < 300:
            with self.lock:
                self.got.append(seen)
        return Response(status_code=status)

    def types(self) -> list[str]:
        return [r.body["type"] for r in self.got]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()
    server = ServerThread(Starlette(routes=[Route("/hook", rec.endpoint, methods=["POST"])]))
    server.start()
    rec.url = server.url + "/hook"
    try:
        yield rec
    finally:
        server.stop()
