"""The store's connection layer on both engines: one set of queries (`?` placeholders), rows
that read alike, portable errors, migrations; and on PostgreSQL the per-company writer lock, safe
concurrent migrations and recovery from lost connections."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import traceback
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest

from sync.store import engine_pg, migrate
from sync.store.db import (
    Database,
    DatabaseUnavailable,
    IntegrityError,
    OperationalError,
    utcnow,
)
from sync.store.sql import to_pyformat
from tests.support.databases import PgServer

pytestmark = pytest.mark.anyio
WAIT_S = 30.0  # a bound on waiting for something that must happen, not a speed claim


@pytest.mark.parametrize(("written", "sent"), [
    ("SELECT a FROM t WHERE b = ? AND c = ?", "SELECT a FROM t WHERE b = %s AND c = %s"),
    ("SELECT '?', 'it''s ?', \"odd?name\" FROM t WHERE x = ?",
     "SELECT '?', 'it''s ?', \"odd?name\" FROM t WHERE x = %s"),
    ("SELECT 1 -- why? because\nWHERE x = ? /* ? */",
     "SELECT 1 -- why? because\nWHERE x = %s /* ? */"),
    ("SELECT 5 % 2 WHERE name LIKE '10%' AND x = ?",
     "SELECT 5 %% 2 WHERE name LIKE '10%%' AND x = %s"),
    ("DELETE FROM t WHERE c = :company OR d = :company",
     "DELETE FROM t WHERE c = %(company)s OR d = %(company)s"),
    ("SELECT x::text FROM t WHERE y = '12:30' AND z = ?",
     "SELECT x::text FROM t WHERE y = '12:30' AND z = %s"),
])
def test_placeholders_are_rewritten_outside_literals_and_every_percent_is_doubled(
    written: str, sent: str
) -> None:
    assert to_pyformat(written) == sent


async def test_a_query_reads_the_same_on_both_engines(database: Database) -> None:
    """`?` inside literals and `%` anywhere stay text; parameters bind in order."""
    row = await database.fetchone(
        "SELECT ? AS first, '?' AS mark, 'x%' AS pct, ? || '%?' AS joined", ("1", "p"))
    assert row is not None
    assert tuple(row) == ("1", "?", "x%", "p%?")
    assert (row[0], row["MARK"], row["pct"]) == ("1", "?", "x%")
    assert row.keys() == ["first", "mark", "pct", "joined"]
    assert dict(row) == {"first": "1", "mark": "?", "pct": "x%", "joined": "p%?"}
    assert await database.scalar("SELECT COUNT(*) FROM companies WHERE name LIKE 'def%'") == 1


async def test_no_row_none_rows_and_sums_read_as_on_sqlite(database: Database) -> None:
    """No row: None / []; SUM and AVG are int and float (PostgreSQL's NUMERIC is converted)."""
    assert await database.fetchone("SELECT id FROM companies WHERE id = ?", ("none",)) is None
    assert await database.fetchall("SELECT id FROM companies WHERE id = ?", ("none",)) == []
    assert await database.scalar("SELECT id FROM companies WHERE id = ?", ("none",)) is None
    total, mean = tuple(await database.fetchone(  # type: ignore[arg-type]
        "SELECT SUM(v), AVG(v) FROM (SELECT 1 AS v UNION ALL SELECT 2 AS v) AS t"))
    assert (total, mean) == (3, 1.5)
    assert (type(total), type(mean)) == (int, float)


async def _add_company(db: Database, company: str) -> int:
    return await db.execute(
        "INSERT INTO companies(id, name, created_at, updated_at) VALUES (?, ?, ?, ?)",
        (company, company, utcnow(), utcnow()))


async def test_writes_count_rows_and_a_failed_transaction_leaves_nothing(
    database: Database,
) -> None:
    assert await _add_company(database, "beta") == 1
    await database.executemany(
        "INSERT INTO companies(id, name, created_at, updated_at) VALUES (?, ?, ?, ?)",
        [(c, c, utcnow(), utcnow()) for c in ("gamma", "delta")])
    assert await database.execute("UPDATE companies SET state_reason = ? WHERE id != ?",
                                  ("x", "default")) == 3
    async def change_and_fail() -> None:
        async with database.transaction() as conn:
            await conn.execute("DELETE FROM companies WHERE id = ?", ("beta",))
            raise RuntimeError("changed my mind")

    with pytest.raises(RuntimeError):
        await change_and_fail()
    assert await database.scalar("SELECT COUNT(*) FROM companies") == 4


async def test_a_constraint_violation_is_the_portable_integrity_error(database: Database) -> None:
    with pytest.raises(IntegrityError):
        await _add_company(database, "default")
    with pytest.raises(IntegrityError):  # a foreign key: no such partner
        await database.execute(
            "INSERT INTO partner_grants(partner_id, company_id, granted_at) VALUES (?, ?, ?)",
            ("ptn_none", "default", utcnow()))
    assert await database.scalar("SELECT COUNT(*) FROM companies") == 1  # usable after


async def test_both_engines_record_every_shared_migration_and_none_is_pending(
    database: Database,
) -> None:
    recorded = await database.fetchall("SELECT version, name FROM schema_migrations ORDER BY 1")
    assert [tuple(r) for r in recorded] == [(v, name) for v, name, _ in migrate.migration_files()]
    assert await database.pending_migrations() == []
    assert await database.migrate() == []


async def test_a_companys_transactions_take_turns_however_many_at_once(
    database: Database,
) -> None:
    """Read-then-write transactions of one company, more at once than the pool has connections:
    each sees the one before it committed (else two would insert the same id)."""

    async def add_next() -> None:
        async with database.transaction() as conn:
            row = await (await conn.execute("SELECT COUNT(*) FROM companies")).fetchone()
            await conn.execute(
                "INSERT INTO companies(id, name, created_at, updated_at) VALUES (?, ?, ?, ?)",
                (f"c{row[0] if row else 0}", "c", utcnow(), utcnow()))

    await asyncio.wait_for(asyncio.gather(*(add_next() for _ in range(3 * engine_pg.POOL_MAX))),
                           WAIT_S)
    assert await database.scalar("SELECT COUNT(*) FROM companies") == 1 + 3 * engine_pg.POOL_MAX


def test_on_postgresql_the_baseline_stands_for_every_migration_up_to_it_and_a_twin_replaces(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shared = [(1, "0001_a.sql", "A"), (1000, "1000_b.sql", "B"), (1100, "1100_c.sql", "C"),
              (1200, "1200_d.sql", "D")]
    own = [(1000, "1000_baseline.sql", "BASE"), (1200, "1200_d.sql", "D on PostgreSQL")]
    monkeypatch.setattr(migrate, "migration_files", lambda folder="": own if folder else shared)
    assert migrate.plan("postgresql", set()) == [
        migrate.Step(((1, "0001_a.sql"), (1000, "1000_b.sql")), "BASE"),
        migrate.Step(((1100, "1100_c.sql"),), "C"),
        migrate.Step(((1200, "1200_d.sql"),), "D on PostgreSQL"),
    ]
    assert migrate.pending_versions("postgresql", {1, 1000, 1100}) == [1200]
    assert migrate.pending_versions("sqlite", {1, 1000}) == [1100, 1200]


def test_postgresqls_own_files_are_the_baseline_and_twins_above_it() -> None:
    """Below the baseline PostgreSQL has nothing of its own (the baseline stands for all of it);
    above, a file of its own replaces the shared one of the same number."""
    own = [version for version, _, _ in migrate.migration_files("postgresql")]
    shared = {version for version, _, _ in migrate.migration_files()}
    assert own[0] == migrate.BASELINE
    assert all(v > migrate.BASELINE and v in shared for v in own[1:]), own


# PostgreSQL only ---------------------------------------------------------------------------


@pytest.fixture
def pg_url(pg_server: PgServer) -> Iterator[str]:
    url = pg_server.create()
    try:
        yield url
    finally:
        pg_server.drop(url)


@pytest.fixture
async def two_processes(pg_url: str) -> AsyncIterator[tuple[Database, Database]]:
    """Two handles with a pool each: what two processes on one database have."""
    one = await Database.open(pg_url)
    two = await Database.open(pg_url)
    try:
        yield one, two
    finally:
        await one.close()
        await two.close()


async def _until_a_lock_is_awaited(db: Database) -> None:
    """Return once a session of this database waits for an advisory lock."""
    for _ in range(int(WAIT_S / 0.01)):
        waiting = await db.scalar(
            "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())")
        if waiting:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("no session waited for the advisory lock")


async def test_two_writers_of_one_company_take_turns_two_companies_do_not_wait(
    two_processes: tuple[Database, Database],
) -> None:
    """A transaction holds its company's lock until COMMIT, across processes; another
    company's transaction goes ahead meanwhile."""
    one, two = two_processes
    held, release, order = asyncio.Event(), asyncio.Event(), []

    async def first() -> None:
        async with one.for_company("acme").transaction() as conn:
            await conn.execute("UPDATE companies SET state_reason = ? WHERE id = ?",
                               ("first", "default"))
            held.set()
            await release.wait()
            order.append("first")

    async def second() -> None:
        async with two.for_company("acme").transaction() as conn:
            order.append("second")
            await conn.execute("UPDATE companies SET state_reason = ? WHERE id = ?",
                               ("second", "default"))

    holder = asyncio.create_task(first())
    await asyncio.wait_for(held.wait(), WAIT_S)
    async with asyncio.timeout(WAIT_S), two.for_company("other").transaction() as conn:
        await conn.execute("SELECT 1")  # another company: not held back
    waiter = asyncio.create_task(second())
    await _until_a_lock_is_awaited(one)
    assert order == []
    release.set()
    await asyncio.wait_for(asyncio.gather(holder, waiter), WAIT_S)
    assert order == ["first", "second"]
    assert await one.scalar("SELECT state_reason FROM companies WHERE id = 'default'") == "second"


async def test_processes_starting_at_once_on_an_empty_database_migrate_it_once(
    pg_server: PgServer,
) -> None:
    url = pg_server.create(migrated=False)
    try:
        opened = await asyncio.gather(*(Database.open(url) for _ in range(3)))
        try:
            versions = await opened[0].fetchall("SELECT version FROM schema_migrations")
            assert sorted(r[0] for r in versions) == [
                v for v, _, _ in migrate.migration_files()]
            assert [await db.migrate() for db in opened] == [[], [], []]
        finally:
            for db in opened:
                await db.close()
    finally:
        pg_server.drop(url)


async def test_the_pool_reconnects_after_its_connections_are_killed(
    two_processes: tuple[Database, Database],
) -> None:
    """pg_terminate_backend (what a PostgreSQL restart does to every session): the next read
    and the next transaction get a new connection by themselves."""
    one, two = two_processes
    before = await one.scalar("SELECT pg_backend_pid()")
    killed = await two.fetchall(
        "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid != pg_backend_pid()")
    assert killed
    assert await one.scalar("SELECT pg_backend_pid()") != before
    assert await _add_company(one, "beta") == 1


async def test_a_server_that_does_not_answer_is_database_unavailable(
    pg_server: PgServer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """At open (at once, with the server's reason) and later (once the pool gives up waiting
    for a connection), without the password."""
    with pytest.raises(DatabaseUnavailable, match="Connection refused") as refused:
        await Database.open("postgresql://postgres:s3cr3t@127.0.0.1:1/alegra")
    assert "s3cr3t" not in str(refused.value)

    monkeypatch.setattr(engine_pg, "POOL_TIMEOUT_S", 0.5)
    url = pg_server.create()
    db = await Database.open(url)
    try:
        pg_server.drop(url)  # its sessions are ended and no new one can start
        with pytest.raises(DatabaseUnavailable, match="cannot reach PostgreSQL"):
            await db.scalar("SELECT 1")
        with pytest.raises(DatabaseUnavailable):
            await _add_company(db, "beta")
    finally:
        await db.close()


async def test_a_lost_connection_inside_a_transaction_is_database_unavailable(
    two_processes: tuple[Database, Database],
) -> None:
    one, two = two_processes

    async def write_while_killed() -> None:
        async with one.transaction() as conn:
            pid = (await (await conn.execute("SELECT pg_backend_pid()")).fetchone() or [0])[0]
            await two.scalar("SELECT pg_terminate_backend(?, 5000)", (pid,))
            await conn.execute("UPDATE companies SET state_reason = 'x'")

    with pytest.raises(DatabaseUnavailable):
        await write_while_killed()
    assert await one.scalar("SELECT state_reason FROM companies") is None  # nothing committed


async def test_the_driver_error_is_caught_as_the_portable_one(database: Database) -> None:
    with pytest.raises(IntegrityError) as caught:
        await database.execute(
            "INSERT INTO companies(id, name, created_at, updated_at)"
            " VALUES ('default', 'x', '2026-01-01', '2026-01-01')")
    if database.engine == "postgresql":
        assert getattr(caught.value, "sqlstate", None) == psycopg.errors.UniqueViolation.sqlstate


async def test_a_refused_row_s_values_are_not_in_the_error_nor_its_traceback(
    database: Database,
) -> None:
    """PostgreSQL's DETAIL line repeats the refused row ("Failing row contains (…)"): what the
    store raises, and the traceback a log would print, name the constraint, not the values."""
    with pytest.raises(IntegrityError) as caught:
        await database.execute(
            "INSERT INTO companies(id, name, email, token_enc, created_at, updated_at)"
            " VALUES ('c-x', 'Ferretería Privada', 'owner@private.do', 'sealed-token', ?, NULL)",
            (utcnow(),))
    printed = "".join(traceback.format_exception(caught.value))
    for value in ("Ferretería Privada", "owner@private.do", "sealed-token"):
        assert value not in printed
    assert "updated_at" in str(caught.value)


async def test_a_transaction_postgresql_rolled_back_is_not_reported_committed(
    two_processes: tuple[Database, Database],
) -> None:
    """A statement that failed inside a transaction, its error caught by the caller, leaves
    PostgreSQL's transaction aborted: its COMMIT is a ROLLBACK. The transaction then raises
    (an error, never a 2xx), rather than returning as if its other writes were committed."""
    one, _ = two_processes

    async def write_swallowing_a_failure() -> None:
        async with one.transaction() as conn:
            await conn.execute("UPDATE companies SET state_reason = 'kept?'")
            with contextlib.suppress(IntegrityError):
                await conn.execute("INSERT INTO companies(id, name, created_at, updated_at)"
                                   " VALUES ('default', 'x', 'now', 'now')")

    with pytest.raises(OperationalError):
        await write_swallowing_a_failure()
    assert await one.scalar("SELECT state_reason FROM companies") is None


def test_a_sqlite_process_does_not_import_the_postgresql_driver() -> None:
    """psycopg costs every process ~0.1 s of start-up (the webhook committer's restart too)."""
    probe = "import sys, sync.store.db, sync.store.inbox; print('psycopg' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "False"


async def test_booleans_are_stored_as_sqlite_stores_them_and_serve_as_conditions(
    database: Database,
) -> None:
    await database.execute("UPDATE companies SET state_reason = CASE WHEN ? THEN 'y' END"
                           " WHERE ? = 1", (True, True))
    assert await database.scalar("SELECT state_reason FROM companies") == "y"
    await database.execute(
        "INSERT INTO partners(id, name, key_hash, key_prefix, is_admin, created_at)"
        " VALUES ('p', 'p', 'h', 'k', ?, 'now')", (True,))
    assert await database.scalar("SELECT is_admin FROM partners WHERE is_admin = ?", (True,)) == 1
