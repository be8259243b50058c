"""`db copy`: every row of a SQLite deployment into an empty database of either engine, checked
by counts; a target holding rows is refused untouched, and a failure leaves the target empty.

The source is a database of the last release as it was in use (`tests/store/releases/`, a row in
every table of its schema), migrated to this version, plus a company with an encrypted token and
its grant, and enough webhook deliveries for several batches. A table the migrations add later
without rows here fails `test_every_table_is_copied_row_for_row`: add its rows to the source.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from sync.cli import main
from sync.store import catalog, companies, receipts
from sync.store import copy as copy_module
from sync.store.catalog import Column, Table
from sync.store.copy import (
    NOT_COPIED,
    CopyFailed,
    CopyRefused,
    Plan,
    copy_database,
    open_database,
    plan_copy,
)
from sync.store.db import Database
from tests.support import schema
from tests.support.databases import ENGINES

pytestmark = pytest.mark.anyio

LAST_RELEASE = "12eccf8"
TOKEN_KEY = Fernet.generate_key()
DELIVERIES = 2_500  # webhook deliveries in the source: three batches of the inbox


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """The filled SQLite source (see the module docstring)."""
    path = tmp_path / "source.db"
    schema.build(path, schema.release_migrations(LAST_RELEASE))
    schema.run_script(path, (schema.RELEASES / LAST_RELEASE / "rows.sql").read_text("utf-8"))
    _add_deliveries(path)
    return path


def _add_deliveries(path: Path) -> None:
    """DELIVERIES webhook deliveries more; the newest is deleted, so the next id must still be
    above it (SQLite's AUTOINCREMENT record)."""
    conn = sqlite3.connect(path)
    try:
        with conn:
            conn.executemany(
                "INSERT INTO inbox(received_at, subject, resource, resource_id, body, shape,"
                " state, attempts) VALUES (?, 'edit-client', 'client', ?, ?, 'ok', 'applied', 0)",
                [(f"2024-05-04T09:00:00.{n:06d}+00:00", str(n), f'{{"n": {n}}}'.encode())
                 for n in range(DELIVERIES)])
            conn.execute("DELETE FROM inbox WHERE id = (SELECT MAX(id) FROM inbox)")
    finally:
        conn.close()


@pytest.fixture
def migrated_source(source: Path) -> Path:
    """The source migrated to this version, with a company holding an encrypted token."""
    asyncio.run(_migrate_and_add_a_company(source))
    return source


async def _migrate_and_add_a_company(path: Path) -> None:
    db = await Database.open(path)
    try:
        acme = await companies.add_company(
            db, "Acme SA", "ops@acme.example", Fernet(TOKEN_KEY).encrypt(b"acme-token"))
        await companies.grant(db, "ptn_a1", acme.id)
        await _add_rows_to_tables_added_since_the_release(db, acme.id)
    finally:
        await db.close()


async def _add_rows_to_tables_added_since_the_release(db: Database, company: str) -> None:
    at = "2026-12-07T10:00:00.000000+00:00"
    await db.execute(
        "INSERT INTO doctor_findings(company_id, check_name, guess, verdict, evidence,"
        " checked_at, ran_by) VALUES (?, 'ncf_field', 'g', 'confirmed', '[]', ?, 'command')",
        (company, at))
    await db.execute(
        "INSERT INTO doctor_learned(company_id, setting, setting_value, evidence, learned_at)"
        " VALUES (?, 'ncf_field', 'numberTemplate.fullNumber', '[]', ?)", (company, at))
    await db.execute(
        "INSERT INTO workers(id, host, pid, started_at, beat_at, expires_at)"
        " VALUES ('h:1:a', 'h', 1, ?, ?, ?)", (at, at, at))
    await db.execute(
        "INSERT INTO company_leases(lease_key, holder, expires_at, acquired_at, companies)"
        " VALUES ('k1', 'h:1:a', ?, ?, ?)", (at, at, f'["{company}"]'))
    await db.execute(
        "INSERT INTO webhook_endpoints(id, partner_id, url, events, secret_enc, state,"
        " created_at, updated_at) VALUES ('whe_1', 'ptn_a1', 'https://hooks.example/x', '[]',"
        " 'sealed', 'enabled', ?, ?)", (at, at))
    await db.execute(
        "INSERT INTO notification_events(id, partner_id, company_id, receipt_id, seq, type,"
        " body, created_at) VALUES ('msg_1', 'ptn_a1', ?, 'rcp_1', 1, 'receipt.completed',"
        " '{\"type\":\"receipt.completed\"}', ?)", (company, at))
    await db.execute(
        "INSERT INTO notification_deliveries(id, event_id, endpoint_id, company_id, receipt_id,"
        " seq, state, attempts, next_attempt_at, last_status, created_at, updated_at)"
        " VALUES ('dlv_1', 'msg_1', 'whe_1', ?, 'rcp_1', 1, 'pending', 2, ?, 503, ?, ?)",
        (company, at, at, at))


@pytest.fixture(params=ENGINES)
def target_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty target of each engine: a SQLite file not made yet, or a new PostgreSQL database
    (dropped afterwards)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'target.db'}"
        return
    server = request.getfixturevalue("pg_server")
    url: str = server.create(migrated=False)
    try:
        yield url
    finally:
        server.drop(url)


def _url(path: Path) -> str:
    return f"sqlite:///{path}"


async def _contents(url: str) -> dict[str, list[dict[str, Any]]]:
    """Every copied table's rows as dicts, in primary-key order."""
    db = await open_database(url)
    try:
        found = {}
        for table in (await catalog.describe_all(db)).values():
            if table.name in NOT_COPIED:
                continue
            order = ", ".join(catalog.quoted(c) for c in table.primary_key or table.column_names)
            rows = await db.fetchall(f"SELECT * FROM {catalog.quoted(table.name)} ORDER BY {order}")  # noqa: S608
            found[table.name] = [dict(row) for row in rows]
        return found
    finally:
        await db.close()


Rows = list[dict[str, Any]]


def _same_columns(source: Rows, target: Rows) -> Rows:
    """The target's rows limited to the source's columns (a target may order them otherwise)."""
    names = list(source[0]) if source else []
    return [{name: row[name] for name in names} for row in target]


async def test_every_table_is_copied_row_for_row(migrated_source: Path, target_url: str) -> None:
    """Every table but schema_migrations, each row with every column as the source holds it,
    and a count per table that agrees; every table of the source has rows (see the docstring)."""
    before = await _contents(_url(migrated_source))
    counts = await copy_database(_url(migrated_source), target_url)

    assert {count.table for count in counts} == set(before)
    assert all(count.ok and count.source == len(before[count.table]) for count in counts)
    assert [table for table, rows in before.items() if not rows] == []
    after = await _contents(target_url)
    for table, rows in before.items():
        assert _same_columns(rows, after[table]) == rows, table
    assert await _source_untouched(migrated_source, before)


async def _source_untouched(path: Path, before: dict[str, list[dict[str, Any]]]) -> bool:
    return await _contents(_url(path)) == before


async def test_the_copy_is_a_working_store(migrated_source: Path, target_url: str) -> None:
    """On the copy: no migration pending, the company's token decrypts with the same key, an
    attachment's bytes are intact, and a new delivery's id is above every id the source gave."""
    await copy_database(_url(migrated_source), target_url)
    db = await open_database(target_url)
    try:
        assert await db.pending_migrations() == []
        token = await companies.read_token(db, "acme-sa")
        assert token is not None
        assert Fernet(TOKEN_KEY).decrypt(token) == b"acme-token"
        attachment = await receipts.get_attachment(db, "rcp_wait")
        assert attachment is not None
        assert attachment.data == b"\x89PNG\r\n\x1a\n"
        new_id = await db.scalar(
            "INSERT INTO inbox(received_at, body, shape, state) VALUES (?, ?, 'ok', 'received')"
            " RETURNING id", ("2024-06-01T00:00:00+00:00", b"{}"))
    finally:
        await db.close()
    assert new_id == 5 + DELIVERIES + 1  # 5 of the release + DELIVERIES, the last one deleted


async def test_a_target_with_rows_is_refused_naming_the_table_and_left_untouched(
    migrated_source: Path, target_url: str
) -> None:
    db = await Database.open(catalog_target(target_url))
    try:
        await db.execute(
            "INSERT INTO partners(id, name, key_hash, key_prefix, created_at)"
            " VALUES ('ptn_x', 'Someone', 'h', 'as_x', '2024-01-01T00:00:00+00:00')")
    finally:
        await db.close()
    before = await _contents(target_url)

    with pytest.raises(CopyRefused, match=r"not empty: partners holds 1 rows"):
        await copy_database(_url(migrated_source), target_url)
    assert await _contents(target_url) == before


def catalog_target(url: str) -> Path | str:
    """What Database.open takes for `url`."""
    return Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:") else url


async def test_a_migrated_target_holding_only_the_seed_rows_counts_as_empty(
    migrated_source: Path, target_url: str
) -> None:
    """Migrated first (which writes the `default` company): the copy still goes in, with the
    source's `default` row; a second copy into the filled target is refused."""
    await (await Database.open(catalog_target(target_url))).close()
    counts = await copy_database(_url(migrated_source), target_url)
    assert all(count.ok for count in counts)
    with pytest.raises(CopyRefused, match=r"receipts holds 4 rows"):
        await copy_database(_url(migrated_source), target_url)


async def test_a_failure_part_way_leaves_the_target_empty_and_the_copy_runs_again(
    migrated_source: Path, target_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last table's rows are refused by the target after every other table was written
    (a NOT NULL column given NULL): nothing stays."""
    real_convert = Plan.convert

    def refused_rows(plan: Plan, rows: Sequence[Sequence[Any]], first: int) -> list[Any]:
        converted = real_convert(plan, rows, first)
        return [(None, *row[1:]) for row in converted] if plan.name == "receipt_steps" else (
            converted)

    with monkeypatch.context() as patch:
        patch.setattr(Plan, "convert", refused_rows)
        with pytest.raises(CopyFailed, match=r"^receipt_steps: .*nothing was copied$") as e:
            await copy_database(_url(migrated_source), target_url)
    assert "supplier" not in str(e.value)  # the refused row's values are not shown

    left = await _contents(target_url)
    assert {table: len(rows) for table, rows in left.items() if rows} == {"companies": 1}
    counts = await copy_database(_url(migrated_source), target_url)
    assert all(count.ok for count in counts)


async def test_an_unmigrated_source_is_refused_and_the_target_not_made(
    source: Path, tmp_path: Path
) -> None:
    target = tmp_path / "target.db"
    with pytest.raises(CopyRefused, match=r"the source lacks migrations .*1000"):
        await copy_database(_url(source), _url(target))
    assert not target.exists()


async def test_a_missing_source_is_named_not_created(tmp_path: Path) -> None:
    with pytest.raises(CopyRefused, match=r"no database at .*nowhere\.db"):
        await copy_database(_url(tmp_path / "nowhere.db"), _url(tmp_path / "target.db"))
    assert not (tmp_path / "nowhere.db").exists()


async def test_a_source_another_process_has_open_is_refused(
    migrated_source: Path, tmp_path: Path
) -> None:
    """The web process or the worker still running: what they write after the snapshot would
    be lost, so the copy names them and does not start."""
    script = ("import sqlite3, sys, time; c = sqlite3.connect(sys.argv[1]);"
              " c.execute('SELECT 1 FROM receipts').fetchall(); print('open', flush=True);"
              " time.sleep(60)")
    holder = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, str(migrated_source), stdout=asyncio.subprocess.PIPE)
    try:
        assert holder.stdout is not None
        assert (await holder.stdout.readline()).strip() == b"open"
        with pytest.raises(CopyRefused, match=rf"processes {holder.pid} have .* open"):
            await copy_database(_url(migrated_source), _url(tmp_path / "target.db"))
    finally:
        holder.kill()
        await holder.wait()
    assert not (tmp_path / "target.db").exists()


async def test_a_reference_to_a_missing_row_is_refused(
    migrated_source: Path, tmp_path: Path
) -> None:
    schema.run_script(migrated_source, "PRAGMA foreign_keys = OFF;"
                      " DELETE FROM receipt_attachments; DELETE FROM receipt_steps;"
                      " DELETE FROM bill_claims; DELETE FROM receipts WHERE id = 'rcp_done';")
    schema.run_script(migrated_source, "PRAGMA foreign_keys = OFF;"
                      " INSERT INTO receipt_steps(receipt_id, step, state, updated_at)"
                      " VALUES ('rcp_done', 'bill', 'done', '2024-05-01T00:00:00+00:00');")
    with pytest.raises(CopyRefused, match=r"1 rows of the source .*receipt_steps → receipts"):
        await copy_database(_url(migrated_source), _url(tmp_path / "target.db"))


async def test_the_same_database_twice_is_refused(migrated_source: Path) -> None:
    same = _url(migrated_source.parent / ".." / migrated_source.parent.name / "source.db")
    with pytest.raises(CopyRefused, match="same database"):
        await copy_database(_url(migrated_source), same)


# --- the plan --------------------------------------------------------------------------------

def _table(name: str, columns: str, references: str = "", types: str = "") -> Table:
    kinds = types.split() or ["text"] * len(columns.split())
    return Table(name, tuple(Column(c, t) for c, t in zip(columns.split(), kinds, strict=True)),
                 (columns.split(maxsplit=1)[0],), frozenset(references.split()))


def test_referenced_tables_come_first() -> None:
    tables = {table.name: table for table in [
        _table("receipt_steps", "receipt_id step", "receipts"),
        _table("receipts", "id partner_id", "partners"),
        _table("partner_grants", "partner_id company_id", "partners companies"),
        _table("partners", "id"), _table("companies", "id"), _table("inbox", "id")]}
    order = [plan.name for plan in plan_copy(tables, tables, "sqlite")]
    assert sorted(order) == sorted(tables)
    for table in tables.values():
        assert all(order.index(parent) < order.index(table.name) for parent in table.references)


def test_a_source_column_the_target_lacks_is_refused() -> None:
    source = {"partners": _table("partners", "id name colour")}
    target = {"partners": _table("partners", "id name")}
    with pytest.raises(CopyRefused, match="table partners has no column colour"):
        plan_copy(source, target, "postgresql")
    with pytest.raises(CopyRefused, match="target has no table partners"):
        plan_copy(source, {}, "postgresql")


def test_values_become_the_postgresql_column_type() -> None:
    """SQLite's loose typing (a number as text, text in a BLOB column) meets PostgreSQL's types;
    what does not convert fails naming table, column and row, never the value."""
    table = _table("t", "n body label raw", types="integer bytea text bytea")
    plan = plan_copy({"t": table}, {"t": table}, "postgresql")[0]
    assert plan.convert([(" 12", "{}", 7, b"\x00")], 0) == [(12, b"{}", "7", b"\x00")]
    assert plan.convert([(None, None, None, None)], 0) == [(None, None, None, None)]
    with pytest.raises(CopyFailed, match=r"^t\.n, row 3: a str value does not fit a integer") as e:
        plan.convert([(1, b"", "", b""), ("secret-ish", b"", "", b"")], 1)
    assert "secret-ish" not in str(e.value)
    with pytest.raises(CopyFailed, match=r"t\.label, row 1: .*NUL character"):
        plan.convert([(1, b"", "a\x00b", b"")], 0)


# --- the command -----------------------------------------------------------------------------

def test_db_copy_prints_each_table_s_counts(
    migrated_source: Path, target_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    target = target_url
    assert main(["db", "copy", "--from", _url(migrated_source), "--to", target]) == 0
    out = capsys.readouterr().out
    assert re.search(rf"^inbox +{4 + DELIVERIES} +{4 + DELIVERIES}  OK$", out, re.MULTILINE)
    assert "every count matches" in out
    assert all(line.endswith("OK") for line in out.splitlines()[1:-1])

    assert main(["db", "copy", "--from", _url(migrated_source), "--to", target]) == 1
    assert "copy refused: the target is not empty: accounts holds 2 rows" in (
        capsys.readouterr().err)


def test_db_migrate_names_what_it_applied(target_url: str,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "migrate", "--url", target_url]) == 0
    assert "Applied migrations 0001, " in capsys.readouterr().out
    assert main(["db", "migrate", "--url", target_url]) == 0
    assert "up to date: no migration pending" in capsys.readouterr().out


def test_db_migrate_without_url_migrates_database_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", _url(tmp_path / "configured.db"))
    monkeypatch.setenv("SECRET_KEY", "a-secret-key-of-the-test-at-least-32-characters")
    assert main(["db", "migrate"]) == 0
    assert "configured.db" in capsys.readouterr().out
    assert schema.versions(tmp_path / "configured.db")[-1][0] >= 1000



class _FakeCursor:
    """A cursor over `rows` that records how many rows each fetch asked for."""

    def __init__(self, rows: list[tuple[Any, ...]]) -> None:
        self.rows = rows
        self.asked: list[int] = []

    async def fetchmany(self, size: int) -> list[tuple[Any, ...]]:
        self.asked.append(size)
        taken, self.rows = self.rows[:size], self.rows[size:]
        return taken


async def test_rows_with_large_blobs_come_in_batches_of_bounded_size() -> None:
    """Attachments: the first fetch is one row, then as many as fit BATCH_BYTES; every row comes
    once, in order. Without BLOB columns, BATCH_ROWS at a time."""
    blob = b"x" * (copy_module.BATCH_BYTES // 5)
    rows = [(n, blob) for n in range(12)]
    cursor = _FakeCursor(list(rows))
    batches = [batch async for batch in copy_module._batches(cursor, wide=[1])]
    assert [row for batch in batches for row in batch] == rows
    assert cursor.asked[0] == 1
    assert all(sum(len(row[1]) for row in batch) <= copy_module.BATCH_BYTES for batch in batches)
    assert len(batches) == 3  # 5 + 5 + 2 of a fifth of BATCH_BYTES each (and 64 bytes a row)

    small = [(n, "a") for n in range(2_500)]
    plain = _FakeCursor(list(small))
    assert [len(b) async for b in copy_module._batches(plain, wide=[])] == [1000, 1000, 500]


def test_db_backup_on_postgresql_points_at_pg_dump(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", "postgresql://alegra@127.0.0.1:5432/alegra")
    monkeypatch.setenv("SECRET_KEY", "a-secret-key-of-the-test-at-least-32-characters")
    assert main(["db", "backup", str(tmp_path / "b.db")]) == 2
    assert "pg_dump" in capsys.readouterr().err
    assert not (tmp_path / "b.db").exists()


async def test_a_writer_the_check_cannot_see_makes_the_copy_fail_not_miss_its_rows(
    migrated_source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process the /proc check cannot see (another user's) writing to the source: the copy's
    snapshot waits for its write lock, then fails; nothing is copied."""
    monkeypatch.setattr("sync.store.db.BUSY_TIMEOUT_MS", 200)
    writer = sqlite3.connect(migrated_source, isolation_level=None)  # this process: not seen
    try:
        writer.execute("BEGIN IMMEDIATE")
        with pytest.raises(CopyFailed, match=r"database is locked; nothing was copied"):
            await copy_database(_url(migrated_source), _url(tmp_path / "target.db"))
    finally:
        writer.close()
    left = await _contents(_url(tmp_path / "target.db"))
    assert {table for table, rows in left.items() if rows} == {"companies"}
