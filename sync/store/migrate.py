"""Which migrations a database needs, on either engine.

Migrations live in `sync/store/migrations/NNNN_name.sql` and are shared by both engines. On
PostgreSQL, `migrations/postgresql/1000_baseline.sql` is the schema every migration up to 1000
made on SQLite, in PostgreSQL's DDL: a fresh PostgreSQL database applies it and records it as
each of those versions, so both engines record the same versions. Above 1000, a file of the same
number in `migrations/postgresql/` replaces the shared one on PostgreSQL (a twin); otherwise the
shared file runs on both.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

BASELINE = 1000
# Migrations renumbered after a release: old version → new. A database that recorded the old
# number has the migration applied; `migrate` moves its record to the new number.
# (0101 was added after 0401 and 0500 had shipped; it became 0501 so the sequence only grows.)
RENUMBERED = {101: 501}

Migration = tuple[int, str, str]  # (version, file name, SQL)


class MigrationOutOfOrder(RuntimeError):
    """A migration not applied yet is numbered below one already applied: a fresh database and
    this one would apply them in different orders. Renumber it above every released one."""


@dataclass(frozen=True)
class Step:
    """SQL to run once, and the (version, name) records it makes."""

    records: tuple[tuple[int, str], ...]
    sql: str


def migration_files(folder_name: str = "") -> list[Migration]:
    """The shared migrations (or, with "postgresql", PostgreSQL's own), in version order."""
    folder = resources.files("sync.store") / "migrations"
    if folder_name:
        folder = folder / folder_name
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            found.append((version, entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


def plan(engine: str, done: set[int]) -> list[Step]:
    """The steps that bring a database that recorded `done` up to date, in order."""
    shared = migration_files()
    if engine == "sqlite":
        return [Step(((v, name),), sql) for v, name, sql in shared if v not in done]
    twins = {v: (name, sql) for v, name, sql in migration_files("postgresql")}
    steps = []
    if not any(v <= BASELINE for v in done):
        records = tuple((v, name) for v, name, _ in shared if v <= BASELINE)
        steps.append(Step(records, twins[BASELINE][1]))
    names = {v: name for v, name, _ in shared if v > BASELINE}
    texts = {v: sql for v, _, sql in shared if v > BASELINE}
    for version in sorted(names.keys() | {v for v in twins if v > BASELINE}):
        if version not in done:
            name = names.get(version) or twins[version][0]
            sql = twins[version][1] if version in twins else texts[version]
            steps.append(Step(((version, name),), sql))
    return steps


def pending_versions(engine: str, done: set[int]) -> list[int]:
    return [v for step in plan(engine, done) for v, _ in step.records]


def refuse_out_of_order(pending: list[int], done: set[int]) -> None:
    """Migrations only grow: each one not applied yet must be numbered above every applied one."""
    highest = max(done, default=0)
    behind = [version for version in pending if version < highest]
    if behind:
        raise MigrationOutOfOrder(
            f"migrations {', '.join(map(str, behind))} are not applied yet but numbered below"
            f" {highest}, which is: a fresh database would apply them in another order."
            " Renumber them above every released migration"
        )


def split_sql(script: str) -> list[str]:
    """Split a migration on `;` at line ends (our migrations hold no triggers or string `;`)."""
    statements, current = [], []
    for line in script.splitlines():
        if line.strip().startswith("--"):
            continue
        current.append(line)
        if line.rstrip().endswith(";"):
            statements.append("\n".join(current).strip())
            current = []
    tail = "\n".join(current).strip()
    if tail:
        statements.append(tail)
    return [s for s in statements if s.strip(" ;\n")]
