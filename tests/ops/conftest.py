"""The real app under TestClient on a real SQLite file, with a partner key and an admin key,
and a `Store` that seeds the tables through the product's own store functions."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from starlette.testclient import TestClient

from receiver.app import create_app
from sync.alegra.records import contact_from_alegra
from sync.settings import Settings, load_settings
from sync.store import jobs
from sync.store.contacts import upsert_contacts
from sync.store.db import Database, utcnow
from sync.store.inbox import NewDelivery, mark_retry, write_batch
from sync.store.partners import create_partner

T = TypeVar("T")
SECRET_KEY = "ops-secret-key-0123456789abcdef"


def make_settings(tmp_path: Path, **env: str) -> Settings:
    return load_settings(env_file=None, environ={
        "SECRET_KEY": SECRET_KEY, "DATABASE_URL": f"sqlite:///{tmp_path / 'ops.db'}",
        "LOG_FORMAT": "json", **env,
    })


def contact_json(
    alegra_id: str, name: str, tax_id: str | None = None, **fields: Any
) -> dict[str, Any]:
    """A contact as Alegra's REST API returns it."""
    raw: dict[str, Any] = {"id": alegra_id, "name": name, "type": ["provider"], "status": "active"}
    if tax_id is not None:
        raw["identification"] = tax_id
        raw["identificationObject"] = {"type": "RNC", "number": tax_id}
    raw.update(fields)
    return raw


@dataclass
class Store:
    """Direct access to the test's database file, through the product's store functions."""

    path: Path

    def run(self, work: Callable[[Database], Awaitable[T]]) -> T:
        async def go() -> T:
            db = await Database.open(self.path)
            try:
                return await work(db)
            finally:
                await db.close()

        return asyncio.run(go())

    def sql(self, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.path) as conn:
            return conn.execute(statement, params).fetchall()

    def contacts(self, *raws: dict[str, Any], source: str = "backfill") -> None:
        records = [contact_from_alegra(r) for r in raws]
        self.run(lambda db: upsert_contacts(db, records, source=source))

    def deliveries(self, *bodies: dict[str, Any]) -> list[int]:
        items = [NewDelivery(json.dumps(b).encode(), 0) for b in bodies]
        return self.run(lambda db: write_batch(db, items))

    def fail_delivery(self, inbox_id: int, state: str = "failed", error: str = "boom") -> None:
        self.run(lambda db: mark_retry(db, [(inbox_id, state, utcnow())], error=error))

    def heartbeat(self, beat_at: str | None = None, budget: dict[str, Any] | None = None) -> None:
        self.sql("INSERT INTO worker_state(id, pid, beat_at, budget) VALUES (1, 4242, ?, ?)"
                 " ON CONFLICT(id) DO UPDATE SET beat_at = excluded.beat_at,"
                 " budget = excluded.budget",
                 (beat_at or utcnow(), json.dumps(budget or {"limit": 150, "remaining": 140})))

    def job_run(self, name: str, outcome: str, duration_s: float = 1.5) -> None:
        async def work(db: Database) -> None:
            await jobs.ensure_jobs(db, {name: None})
            run_id = await jobs.start_run(db, name)
            await jobs.finish_run(db, run_id, name, owner="test", outcome=outcome,
                                  duration_s=duration_s, error=None, next_run_at=utcnow(),
                                  detail={})

        self.run(work)


@dataclass
class OpsApi:
    client: TestClient
    store: Store
    keys: dict[str, str]
    settings: Settings

    def get(self, path: str, key: str | None = "ops", **params: Any) -> httpx.Response:
        return self.client.get(path, params=params, headers=self.auth(key))

    def post(self, path: str, key: str | None = "ops", **kwargs: Any) -> httpx.Response:
        return self.client.post(path, headers={**self.auth(key), **kwargs.pop("headers", {})},
                                **kwargs)

    def auth(self, key: str | None) -> dict[str, str]:
        return {} if key is None else {"Authorization": f"Bearer {self.keys.get(key, key)}"}


async def _partners(db: Database) -> dict[str, str]:
    keys = {}
    for name, admin in (("acme", False), ("globex", False), ("ops", True)):
        _, keys[name] = await create_partner(db, name, admin)
    return keys


@pytest.fixture
def ops_settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def ops(ops_settings: Settings) -> Iterator[OpsApi]:
    """The app on a fresh database with partners acme, globex and the admin `ops`."""
    store = Store(ops_settings.database_path)
    keys = store.run(_partners)
    with TestClient(create_app(ops_settings)) as client:
        yield OpsApi(client, store, keys, ops_settings)
