"""Fixtures for the webhook suite: settings on a real SQLite file, the store, an Alegra client
pointed at the simulator, and the real app under TestClient."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from receiver.app import create_app
from sync.alegra.budget import RateBudget
from sync.alegra.client import AlegraClient
from sync.settings import Settings, load_settings
from sync.store.db import Database
from sync.webhook_tokens import make_token
from tests.support.servers import RunningSimulator

NEW_KEY = "new-secret-key-0123456789abcdef"
OLD_KEY = "old-secret-key-0123456789abcdef"


def make_settings(tmp_path: Path, secret_key: str = NEW_KEY, **env: str) -> Settings:
    environ = {
        "SECRET_KEY": secret_key,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'sync.db'}",
        "LOG_FORMAT": "json",
        **env,
    }
    return load_settings(env_file=None, environ=environ)


def delivery(subject: str, resource: str, **fields: Any) -> bytes:
    """A webhook body the way Alegra sends it."""
    return json.dumps({"subject": subject, "message": {resource: fields}}).encode()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def token(settings: Settings) -> str:
    return make_token(settings.secret_keys)


@pytest.fixture
def app_client(settings: Settings) -> Iterator[TestClient]:
    """The real app (lifespan included: the inbox writer runs) on the settings' database."""
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    database = await Database.open(settings.database_path)
    yield database
    await database.close()


@pytest.fixture
async def alegra(simulator: RunningSimulator) -> AsyncIterator[AlegraClient]:
    """A real client on the simulator, with a budget matching its (1 s) rate window."""
    budget = RateBudget(simulator.config.rate_limit, simulator.config.window_s)
    client = AlegraClient(
        simulator.base_url, simulator.email, simulator.token, budget,
        max_attempts=2, backoff_base_s=0.01, backoff_cap_s=0.05,
    )
    yield client
    await client.aclose()


def read_db(path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
    """Query the store from the test's thread, as an operator would."""
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        return list(conn.execute(sql, params).fetchall())
    finally:
        conn.close()
