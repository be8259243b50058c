"""The real app under TestClient on a real SQLite file, with three partners (one an admin)."""

from __future__ import annotations

import asyncio
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
from sync.settings import Settings, load_settings
from sync.store.db import Database
from sync.store.partners import create_partner

MAX_ATTACHMENT = 4096
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
PDF = b"%PDF-1.7\n" + b"x" * 64


def receipt_body(**changes: Any) -> dict[str, Any]:
    """A valid receipt: one line of 100.00 at 18 % ITBIS, total 118.00."""
    data: dict[str, Any] = {
        "supplier": {"name": "Ferretería Ochoa, S.R.L.", "tax_id": "1-31-24679-6"},
        "date": "2024-05-01",
        "ncf": "B0100000001",
        "category": "Gastos de oficina",
        "lines": [{"description": "Tornillos", "amount": "100.00", "tax_rate": 18}],
        "total": "118.00",
    }
    data.update(changes)
    return data


@dataclass
class Api:
    """The running app, its database file and the partners' keys by name."""

    client: TestClient
    db_path: Path
    keys: dict[str, str]

    def headers(
        self, key: str = "acme", idem: str | None = "key-1", **extra: str
    ) -> dict[str, str]:
        out = {"Authorization": f"Bearer {self.keys.get(key, key)}", **extra}
        if idem is not None:
            out["Idempotency-Key"] = idem
        return out

    def post(
        self, body: Any, *, key: str = "acme", idem: str | None = "key-1", **headers: str
    ) -> httpx.Response:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        return self.client.post(
            "/v1/receipts", content=raw,
            headers={"Content-Type": "application/json", **self.headers(key, idem, **headers)},
        )

    def get(self, receipt_id: str, key: str = "acme", **headers: str) -> httpx.Response:
        return self.client.get(
            f"/v1/receipts/{receipt_id}", headers=self.headers(key, None, **headers)
        )

    def count(self, table: str = "receipts") -> int:
        with sqlite3.connect(self.db_path) as conn:
            return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # noqa: S608


def make_settings(tmp_path: Path) -> Settings:
    return load_settings(env_file=None, environ={
        "SECRET_KEY": "x" * 32,
        "DATABASE_URL": f"sqlite:///{tmp_path}/t.db",
        "MAX_ATTACHMENT_BYTES": str(MAX_ATTACHMENT),
    })


async def _partners(path: Path) -> dict[str, str]:
    db = await Database.open(path)
    try:
        keys = {}
        for name, admin in (("acme", False), ("globex", False), ("ops", True)):
            _, keys[name] = await create_partner(db, name, admin)
        return keys
    finally:
        await db.close()


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    """The app on a fresh database with partners acme, globex and the admin ops."""
    settings = make_settings(tmp_path)
    keys = asyncio.run(_partners(settings.database_path))
    with TestClient(create_app(settings)) as client:
        yield Api(client, settings.database_path, keys)
