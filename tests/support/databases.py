"""The store's two engines for tests: SQLite files, and PostgreSQL databases made per test.

PostgreSQL comes from TEST_DATABASE_URL (any database of the server: it is where databases are
created from), else from 127.0.0.1:5432 as user postgres if a server answers there. Each test
gets a database of its own, copied from a template migrated once per session (CREATE DATABASE …
TEMPLATE is fast) and dropped afterwards. Without a server the PostgreSQL tests skip, except
in CI (CI=true), where they fail: the CI must not pass without running them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import secrets
from collections.abc import Coroutine
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from sync.store.db import Database

ENGINES = ("sqlite", "postgresql")
PREFIX = "alegra_test_"  # then the pid of the test session, a random part and a number
LOCAL_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
T = TypeVar("T")


def server_url() -> str:
    return os.environ.get("TEST_DATABASE_URL") or LOCAL_SERVER


def url_of(target: Path | str) -> str:
    """DATABASE_URL for a `database_target`: a SQLite file's path or a PostgreSQL URL."""
    return target if isinstance(target, str) else f"sqlite:///{target}"


def with_database(url: str, name: str) -> str:
    """`url` naming the database `name` instead."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run `coroutine` to its end from synchronous code, even inside a running event loop."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


class PgServer:
    """A PostgreSQL server the tests may create databases on (names unique to this session)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._prefix = f"{PREFIX}{os.getpid()}_{secrets.token_hex(3)}"
        self._numbers = itertools.count()
        self._template: str | None = None
        # The next test's migrated database, made while this one runs: a copy of the template
        # takes ~0.5 s, nearly all of it the server's fsync, so it overlaps the test for free.
        self._ahead = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pg-ahead")
        self._spare: Future[str] | None = None

    def _admin(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.url, autocommit=True, connect_timeout=5)

    def create(self, *, migrated: bool = True) -> str:
        """A new database's URL: migrated (a copy of the session's template), or empty."""
        if not migrated:
            return self._create("template0")
        template = self._migrated_template()
        spare, self._spare = self._spare, self._ahead.submit(self._create, template)
        return spare.result() if spare is not None else self._create(template)

    def _create(self, template: str) -> str:
        name = f"{self._prefix}_{next(self._numbers)}"
        with self._admin() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template)))
        return with_database(self.url, name)

    def drop(self, url: str) -> None:
        name = urlsplit(url).path.lstrip("/")
        with self._admin() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))

    def _migrated_template(self) -> str:
        if self._template is None:
            url = self.create(migrated=False)
            run_async(_migrate(url))
            self._template = urlsplit(url).path.lstrip("/")
        return self._template

    def close(self) -> None:
        if self._spare is not None:
            with contextlib.suppress(Exception):  # it failed: there is nothing to drop
                self.drop(self._spare.result())
        self._ahead.shutdown()
        if self._template is not None:
            self.drop(with_database(self.url, self._template))

    def drop_abandoned(self) -> None:
        """Drop the databases a test session on this machine left behind when it was killed
        (its process is gone): only with a server on this machine, where the pids are ours."""
        if urlsplit(self.url).hostname not in ("127.0.0.1", "localhost", "::1"):
            return
        with self._admin() as conn:
            names = [r[0] for r in conn.execute(
                "SELECT datname FROM pg_database WHERE datname LIKE %s", (PREFIX + "%",))]
        for name in names:
            pid = name[len(PREFIX):].split("_", 1)[0]
            if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
                self.drop(with_database(self.url, name))


async def _migrate(url: str) -> None:
    db = await Database.open(url)
    await db.close()


def reachable_server() -> PgServer:
    """The tests' PostgreSQL server; skips the test (fails it in CI) when none answers."""
    url = server_url()
    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        reason = f"no PostgreSQL for the tests at {url.split('@')[-1]}: {exc}".strip()
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason} (CI must run the PostgreSQL tests: start the server)")
        pytest.skip(reason)
    server = PgServer(url)
    server.drop_abandoned()
    return server
