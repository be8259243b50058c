"""A scratch PostgreSQL database per test, on the server of TEST_DATABASE_URL (else the one on
127.0.0.1:5432), dropped afterwards; and a way to take it away for a while.

An outage is `ALTER DATABASE … ALLOW_CONNECTIONS false` and every backend of that database
terminated: to the web process exactly what a PostgreSQL restart or a network cut is (its
connections die, new ones are refused), without touching the other databases of a server the
other suites share. `restored()` lets connections in again.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

SERVER_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@dataclass(frozen=True)
class ScratchDatabase:
    name: str
    url: str

    def admin(self) -> psycopg.Connection[tuple[object, ...]]:
        """A connection to the server's maintenance database (not this one)."""
        return psycopg.connect(SERVER_URL, autocommit=True, connect_timeout=5)

    def connect(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(self.url, autocommit=True, connect_timeout=5)

    def rows(self, query: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        with self.connect() as conn:
            return conn.execute(query, params).fetchall()  # type: ignore[arg-type]

    def take_down(self) -> int:
        """Refuse new connections and end every open one; returns how many were ended."""
        with self.admin() as conn:
            conn.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(
                sql.Identifier(self.name)))
            ended = conn.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()", (self.name,)).fetchone()
        return int(ended[0]) if ended else 0

    def bring_up(self) -> None:
        with self.admin() as conn:
            conn.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(
                sql.Identifier(self.name)))

    @contextmanager
    def down(self) -> Iterator[None]:
        self.take_down()
        try:
            yield
        finally:
            self.bring_up()


def _server_answers() -> bool:
    try:
        psycopg.connect(SERVER_URL, connect_timeout=3).close()
    except psycopg.Error:
        return False
    return True


@pytest.fixture
def pg() -> Iterator[ScratchDatabase]:
    """An empty database of its own (`alegra_pgweb_<random>`), dropped after the test."""
    if not _server_answers():
        if os.environ.get("CI"):
            pytest.fail(f"no PostgreSQL answers at {SERVER_URL}: CI must run these tests")
        pytest.skip(f"no PostgreSQL answers at {SERVER_URL}")
    name = "alegra_pgweb_" + secrets.token_hex(4)
    parts = urlsplit(SERVER_URL)
    scratch = ScratchDatabase(name, urlunsplit(parts._replace(path=f"/{name}")))
    with scratch.admin() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield scratch
    finally:
        with scratch.admin() as conn:
            conn.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(
                sql.Identifier(name)))
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(
                sql.Identifier(name)))
