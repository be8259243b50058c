"""The real app under TestClient on a real SQLite file holding three companies besides `default`
(`acme-sa`, `globex-sa`, and `gone`, removed) and partners with different grants:

- `solo`: `default` only (as every partner added without a company);
- `alpha`: `acme-sa` and the removed `gone`;
- `both`: `acme-sa` and `globex-sa`;
- `ops`: an admin key (every live company).

Companies and grants are written with plain SQL on the tables of migration 1000, and rows of a
company (receipts, contacts, inbox events) are seeded the same way, so the tests depend on the
schema only, not on the store functions that write them.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from receiver.app import create_app
from sync.receipt_model import parse_submission
from sync.settings import Settings, load_settings
from sync.store.db import Database, utcnow
from sync.store.partners import create_partner
from tests.receipts_api.conftest import receipt_body

HEADER = "Alegra-Company"
COMPANIES = {"acme-sa": "active", "globex-sa": "active", "gone": "removed"}
GRANTS = {"solo": ("default",), "alpha": ("acme-sa", "gone"), "both": ("acme-sa", "globex-sa")}


@dataclass
class World:
    """The running app, its database file, the partners' keys and ids by name."""

    client: TestClient
    path: Path
    keys: dict[str, str]
    ids: dict[str, str]

    def headers(self, key: str, company: str | None = None, **extra: str) -> dict[str, str]:
        out = {"Authorization": f"Bearer {self.keys[key]}", **extra}
        if company is not None:
            out[HEADER] = company
        return out

    def get(self, path: str, key: str = "ops", company: str | None = None,
            **params: Any) -> httpx.Response:
        return self.client.get(path, params=params, headers=self.headers(key, company))

    def post_receipt(self, key: str, company: str | None = None, idem: str = "key-1",
                     body: dict[str, Any] | None = None) -> httpx.Response:
        return self.client.post(
            "/v1/receipts", content=json.dumps(body or receipt_body()).encode(),
            headers=self.headers(key, company, **{"Content-Type": "application/json",
                                                  "Idempotency-Key": idem}),
        )

    def sql(self, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.path) as conn:
            return conn.execute(statement, params).fetchall()

    def seed_receipt(self, receipt_id: str, partner: str, company: str,
                     status: str = "queued", idem: str | None = None) -> str:
        """A stored receipt of `partner` in `company`, as the receipt API would store it."""
        payload = parse_submission(receipt_body(), max_attachment_bytes=4096).receipt.to_payload()
        now = utcnow()
        self.sql(
            "INSERT INTO receipts(id, partner_id, idempotency_key, body_hash, payload, status,"
            " receipt_date, total, created_at, updated_at, company_id)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (receipt_id, self.ids[partner], idem or receipt_id, hashlib.sha256(b"x").hexdigest(),
             json.dumps(payload), status, payload["date"], payload["total"], now, now, company),
        )
        return receipt_id

    def seed_contact(self, alegra_id: str, name: str, company: str) -> None:
        raw = json.dumps({"id": alegra_id, "name": name})
        now = utcnow()
        self.sql(
            "INSERT INTO contacts(alegra_id, name, name_key, types, raw, source, confirmed_at,"
            " updated_at, company_id) VALUES (?, ?, ?, '[\"provider\"]', ?, 'backfill', ?, ?, ?)",
            (alegra_id, name, name.lower(), raw, now, now, company),
        )

    def seed_event(self, resource_id: str, company: str) -> int:
        body = json.dumps({"subject": "edit-client", "message": {"client": {"id": resource_id}}})
        self.sql(
            "INSERT INTO inbox(received_at, subject, resource, resource_id, body, shape, state,"
            " company_id) VALUES (?, 'edit-client', 'client', ?, ?, 'ok', 'received', ?)",
            (utcnow(), resource_id, body.encode(), company),
        )
        return int(self.sql("SELECT MAX(id) FROM inbox")[0][0])

    def revoke(self, partner: str, company: str) -> None:
        self.sql("DELETE FROM partner_grants WHERE partner_id = ? AND company_id = ?",
                 (self.ids[partner], company))


def make_settings(tmp_path: Path) -> Settings:
    return load_settings(env_file=None, environ={
        "SECRET_KEY": "x" * 32, "DATABASE_URL": f"sqlite:///{tmp_path}/companies.db",
        "MAX_ATTACHMENT_BYTES": "4096",
    })


async def _seed(path: Path, companies: dict[str, str],
                grants: dict[str, tuple[str, ...]]) -> tuple[dict[str, str], dict[str, str]]:
    db = await Database.open(path)
    try:
        now = utcnow()
        for company, state in companies.items():
            await db.execute("INSERT INTO companies(id, name, email, state, created_at,"
                             " updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                             (company, company, f"{company}@example.com", state, now, now))
        keys, ids = {}, {}
        for name, granted in (*grants.items(), ("ops", ())):
            partner, keys[name] = await create_partner(db, name, is_admin=name == "ops")
            ids[name] = partner.id
            await db.execute("DELETE FROM partner_grants WHERE partner_id = ?", (partner.id,))
            for company in granted:
                await db.execute("INSERT INTO partner_grants(partner_id, company_id, granted_at)"
                                 " VALUES (?, ?, ?)", (partner.id, company, now))
        return keys, ids
    finally:
        await db.close()


def running(tmp_path: Path, companies: dict[str, str],
            grants: dict[str, tuple[str, ...]]) -> Iterator[World]:
    settings = make_settings(tmp_path)
    keys, ids = asyncio.run(_seed(settings.database_path, companies, grants))
    with TestClient(create_app(settings)) as client:
        yield World(client, settings.database_path, keys, ids)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    """The app with companies default, acme-sa, globex-sa and the removed gone."""
    yield from running(tmp_path, COMPANIES, GRANTS)


@pytest.fixture
def single(tmp_path: Path) -> Iterator[World]:
    """The app of a deployment that never added a company: `solo` and the admin `ops`."""
    yield from running(tmp_path, {}, {"solo": ("default",)})
