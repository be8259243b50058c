"""Migrations only grow: a database of the last release migrates to the schema of a fresh one.

`releases/<commit>/migrations/` is a copy of the migration files that release shipped and
`rows.sql` rows written against its schema. At each release, add the new release's copy and point
LAST_RELEASE at it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sync.store import inbox, receipt_work
from sync.store.db import RENUMBERED, Database, MigrationOutOfOrder, _migration_files
from tests.support import schema

LAST_RELEASE = "12eccf8"
pytestmark = pytest.mark.anyio


def released_versions(release: str) -> dict[int, str]:
    """The release's migrations by the version the current code knows them by → their SQL."""
    return {RENUMBERED.get(v, v): sql for v, _, sql in schema.release_migrations(release)}


async def release_database(path: Path) -> dict[str, list[dict[str, object]]]:
    """A database as the last release left it, in use; returns its rows."""
    schema.build(path, schema.release_migrations(LAST_RELEASE))
    rows = (schema.RELEASES / LAST_RELEASE / "rows.sql").read_text(encoding="utf-8")
    schema.run_script(path, rows)
    return schema.table_rows(path)


async def test_the_last_release_migrates_to_a_fresh_schema_and_keeps_every_row(
    tmp_path: Path,
) -> None:
    """A database of the last release, filled, migrates to exactly the schema (and migration
    record) of a fresh one, every row it held unchanged, and none re-applied."""
    before = await release_database(tmp_path / "old.db")
    upgraded = await Database.open(tmp_path / "old.db")
    await upgraded.close()
    fresh = await Database.open(tmp_path / "fresh.db")
    await fresh.close()

    assert schema.schema(tmp_path / "old.db") == schema.schema(tmp_path / "fresh.db")
    assert schema.versions(tmp_path / "old.db") == schema.versions(tmp_path / "fresh.db")
    after = schema.table_rows(tmp_path / "old.db")
    assert all(before[table] for table in before)  # the fixture fills every table
    for table, rows in before.items():
        kept = [{column: row[column] for column in rows[0]} for row in after[table]]
        assert kept == rows, table


async def test_the_current_code_works_on_an_upgraded_release(tmp_path: Path) -> None:
    """The worker claims the release's queued receipt and its pending delivery after upgrading."""
    await release_database(tmp_path / "old.db")
    db = await Database.open(tmp_path / "old.db")
    try:
        claimed = await receipt_work.claim_next(db, owner="h:1:a", lease_s=60)
        group = await inbox.claim_group(db, "client", "503")
    finally:
        await db.close()
    assert claimed is not None
    assert claimed.receipt_id == "rcp_wait"
    assert [row.subject for row in group.rows] == ["new-client"]


async def test_a_release_database_reports_no_renumbered_migration_as_pending(
    tmp_path: Path,
) -> None:
    """Before migrating, /readyz's reading of a release database counts its 0101 as 0501."""
    await release_database(tmp_path / "old.db")
    db = await Database.open(tmp_path / "old.db", migrate=False)
    pending = await db.pending_migrations()
    await db.close()
    assert not set(RENUMBERED.values()) & set(pending)
    assert pending == [v for v, _, _ in _migration_files() if v not in released_versions(
        LAST_RELEASE)]


def test_shipped_migrations_keep_the_released_ones_and_only_grow() -> None:
    """Every released migration ships unchanged, and every newer one is numbered above all of
    them (a migration added below would be applied out of order by an upgraded database)."""
    released = released_versions(LAST_RELEASE)
    shipped = _migration_files()
    versions = [version for version, _, _ in shipped]
    assert len(versions) == len(set(versions)), "two migration files share a version"
    assert {v: sql for v, _, sql in shipped if v in released} == released
    newer = [v for v in versions if v not in released]
    assert all(v > max(released) for v in newer), (newer, max(released))


async def test_a_migration_numbered_below_an_applied_one_is_refused(tmp_path: Path) -> None:
    """A database missing a migration numbered below one it applied refuses to migrate, and
    changes nothing."""
    db = await Database.open(tmp_path / "a.db")
    try:
        await db.execute("DELETE FROM schema_migrations WHERE version = 400")
        with pytest.raises(MigrationOutOfOrder, match="400"):
            await db.migrate()
        assert await db.pending_migrations() == [400]
    finally:
        await db.close()

