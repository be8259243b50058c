"""`alegra-sync db backup PATH`: a consistent copy of the live database, taken while it is
written, that restores with every committed row, current migrations and a clean integrity check."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from sync.cli import main
from sync.store.db import Database
from tests.ops.conftest import SECRET_KEY

INSERT = ("INSERT INTO inbox(received_at, subject, body, shape, state)"
          " VALUES ('2024-05-01T00:00:00+00:00', 'edit-client', ?, 'client', 'received')")


@pytest.fixture
def live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A migrated database the CLI is configured for (DATABASE_URL), no .env around."""
    path = tmp_path / "live.db"

    async def create() -> None:
        await (await Database.open(path)).close()

    asyncio.run(create())
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SECRET_KEY", SECRET_KEY)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{path}")
    return path


def _restored(copy: Path) -> tuple[list[int], list[int]]:
    """Open the copy as a restore would: (inbox ids it holds, migrations still pending)."""
    async def check() -> tuple[list[int], list[int]]:
        db = await Database.open(copy, migrate=False)
        try:
            ids = [int(r[0]) for r in await db.fetchall("SELECT id FROM inbox ORDER BY id")]
            return ids, await db.pending_migrations()
        finally:
            await db.close()

    return asyncio.run(check())


def _integrity(copy: Path) -> list[str]:
    conn = sqlite3.connect(copy)
    try:
        return [row[0] for row in conn.execute("PRAGMA integrity_check")]
    finally:
        conn.close()


@pytest.fixture
def writer(live: Path) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(live, isolation_level=None)
    conn.execute("PRAGMA wal_autocheckpoint = 0")  # committed rows stay in the -wal file
    yield conn
    conn.close()


def test_the_backup_holds_rows_still_in_the_wal_and_waits_for_no_writer(
    live: Path, writer: sqlite3.Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    """Taken while a writer holds its write lock: every committed row (those only in the -wal
    too), none of the uncommitted ones, migrations current, integrity ok."""
    for n in range(200):
        writer.execute(INSERT, (f'{{"n": {n}}}'.encode(),))
    assert live.with_name("live.db-wal").stat().st_size > 0
    writer.execute("BEGIN IMMEDIATE")
    writer.execute(INSERT, (b"uncommitted",))
    copy = live.with_name("copy.db")
    assert main(["db", "backup", str(copy)]) == 0
    writer.execute("COMMIT")
    assert "integrity ok" in capsys.readouterr().out
    assert not copy.with_name("copy.db-wal").exists()  # one self-contained file
    assert copy.stat().st_mode & 0o077 == 0  # receipts and attachments: owner only
    ids, pending = _restored(copy)
    assert ids == list(range(1, 201))
    assert pending == []
    assert _integrity(copy) == ["ok"]


def test_a_backup_during_continuous_writes_is_a_consistent_prefix(
    live: Path, writer: sqlite3.Connection
) -> None:
    """A writer committing all along neither fails nor tears the copy: it holds rows 1..k."""
    stop, errors = threading.Event(), []
    writer.close()

    def write() -> None:
        conn = sqlite3.connect(live, isolation_level=None, timeout=10)
        try:
            while not stop.is_set():
                conn.execute(INSERT, (b"{}",))
        except sqlite3.Error as exc:  # pragma: no cover - the failure this test looks for
            errors.append(exc)
        finally:
            conn.close()

    seed = sqlite3.connect(live)
    with seed:
        seed.executemany(INSERT, [(b"{}",)] * 500)
    seed.close()
    thread = threading.Thread(target=write)
    thread.start()
    try:
        copy = live.with_name("copy.db")
        assert main(["db", "backup", str(copy)]) == 0
    finally:
        stop.set()
        thread.join()
    ids, pending = _restored(copy)
    assert len(ids) >= 500
    assert ids == list(range(1, len(ids) + 1))
    assert (pending, _integrity(copy), errors) == ([], ["ok"], [])


def test_a_backup_onto_the_live_database_is_refused(
    live: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """PATH naming the database itself is refused and the database is left as it was."""
    size = live.stat().st_size
    assert main(["db", "backup", str(live)]) == 1
    assert "is the live database itself" in capsys.readouterr().err
    assert live.stat().st_size == size
    assert _integrity(live) == ["ok"]
