"""A PostgreSQL database per test (`pg_server`, tests/support/databases.py: TEST_DATABASE_URL's
server, else 127.0.0.1:5432), dropped afterwards; and a way to take it away for a while.

An outage is `ALTER DATABASE … ALLOW_CONNECTIONS false` and every backend of that database
terminated: to the web process exactly what a PostgreSQL restart or a network cut is (its
connections die, new ones are refused), without touching the other databases of a server the
other suites share. `restored()` lets connections in again.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

import psycopg
import pytest
from psycopg import sql

from tests.support.databases import PgServer, server_url


@dataclass(frozen=True)
class ScratchDatabase:
    name: str
    url: str

    def admin(self) -> psycopg.Connection[tuple[object, ...]]:
        """A connection to the server's maintenance database (not this one)."""
        return psycopg.connect(server_url(), autocommit=True, connect_timeout=5)

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


@pytest.fixture
def pg(pg_server: PgServer) -> Iterator[ScratchDatabase]:
    """A migrated database of its own (tests/support/databases.py), dropped after the test."""
    url = pg_server.create()
    scratch = ScratchDatabase(urlsplit(url).path.lstrip("/"), url)
    try:
        yield scratch
    finally:
        scratch.bring_up()
        pg_server.drop(url)
