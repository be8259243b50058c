"""The store's one dialect of SQL, and what makes it run on PostgreSQL too.

Queries are written once, with SQLite's `?` placeholders (and, in a few places, `:name` with a
dict of parameters). `to_pyformat` rewrites a query for psycopg (`%s`, `%(name)s`, a literal `%`
doubled), leaving string literals, quoted names and comments alone. `RowMaker` turns PostgreSQL
rows into real `sqlite3.Row` objects, so every caller reads a row the same way on both engines:
`row[0]`, `row["col"]` (case-insensitive), `row.keys()`, `dict(row)`.
"""

from __future__ import annotations

import functools
import re
import sqlite3
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

# The exit status of a process that stops on a database that may come back (EX_TEMPFAIL of
# sysexits.h): the systemd units restart on it, unlike CONFIG_ERROR_EXIT (deploy/*.service).
UNAVAILABLE_EXIT = 75

Row = sqlite3.Row
Params = Sequence[Any] | dict[str, Any]


class PgIntegrityError(Exception):
    """psycopg's IntegrityError as the PostgreSQL engine re-raises it: the server's primary
    message and its `sqlstate`, never its DETAIL (the row's values). Defined here so that only a
    PostgreSQL deployment imports psycopg: every process imports this module, and psycopg costs
    ~0.1 s of start-up (the webhook committer's too)."""

    sqlstate: str | None = None


class PgOperationalError(Exception):
    """psycopg's OperationalError that is not a lost server (that is DatabaseUnavailable)."""

    sqlstate: str | None = None


# What the store catches, whichever engine raised it.
IntegrityError: tuple[type[Exception], ...] = (sqlite3.IntegrityError, PgIntegrityError)
OperationalError: tuple[type[Exception], ...] = (sqlite3.OperationalError, PgOperationalError)


class DatabaseUnavailable(Exception):
    """The database cannot be opened or reached: a SQLite file that is not a database, or a
    PostgreSQL server that does not answer (or went away mid-statement). The message says why
    and never holds a password. The web process answers 503 for it: nothing was committed."""

    def __init__(self, target: Path | str, reason: object) -> None:
        if isinstance(target, Path):
            message = f"DATABASE_URL: cannot open {target} as a SQLite database: {reason}"
        else:
            message = f"DATABASE_URL: cannot reach PostgreSQL at {target}: {reason}"
        super().__init__(message)
        self.target = target
        self.reason = reason
        # A server may come back (a restart, the network): worth retrying, unlike a SQLite
        # file that is not a database. A process supervisor should restart on it.
        self.transient = not isinstance(target, Path)

    @property
    def exit_status(self) -> int:
        """What a process stopping on this exits with: UNAVAILABLE_EXIT (restarted by the
        systemd units) when the server may come back, else CONFIG_ERROR_EXIT (not restarted)."""
        from sync.settings import CONFIG_ERROR_EXIT  # noqa: PLC0415 -- starlette: when stopping

        return UNAVAILABLE_EXIT if self.transient else CONFIG_ERROR_EXIT

    @property
    def heading(self) -> str:
        """How a one-line refusal starts: a bad setting, or a server that is not answering."""
        return "database unavailable" if self.transient else "configuration error"


class Cursor(Protocol):
    """What a statement gives back, on either engine (aiosqlite's cursor has this shape)."""

    @property
    def rowcount(self) -> int: ...

    @property
    def lastrowid(self) -> int | None: ...  # SQLite only (PostgreSQL: TypeError): use RETURNING

    async def fetchone(self) -> Row | None: ...

    async def fetchall(self) -> Iterable[Row]: ...


class Connection(Protocol):
    """What `Database.transaction()` yields, on either engine: statements with `?` parameters."""

    def execute(self, sql: str, parameters: Any = ..., /) -> Awaitable[Cursor]: ...

    def executemany(
        self, sql: str, parameters: Iterable[Iterable[Any]], /
    ) -> Awaitable[Cursor]: ...


def is_postgresql(target: object) -> bool:
    """True for a `postgresql://` (or `postgres://`) URL; anything else is a SQLite file."""
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))

# Kept as written (but for `%`, which psycopg reads everywhere, literals too): '…' literals
# ('' inside), "…" names, -- comments, /* */ comments.
# Rewritten: ? placeholders, :name placeholders (not `::` casts), and %.
_TOKENS = re.compile(
    r"""(?P<skip>'(?:[^']|'')*'|"(?:[^"]|"")*"|--[^\n]*|/\*.*?\*/)"""
    r"""|(?P<cast>::)|(?P<named>:[A-Za-z_]\w*)|(?P<qmark>\?)|(?P<percent>%)""",
    re.DOTALL,
)


@functools.lru_cache(maxsize=2048)
def to_pyformat(sql: str) -> str:
    """`sql` with `?` → `%s` and `:name` → `%(name)s` outside literals and comments, and every
    `%` doubled (psycopg reads `%` everywhere)."""

    def replace(match: re.Match[str]) -> str:
        if match["qmark"]:
            return "%s"
        if match["named"]:
            return f"%({match['named'][1:]})s"
        return match[0].replace("%", "%%")  # a literal, a name, a comment, a lone %

    return _TOKENS.sub(replace, sql)


class RowMaker:
    """Makes `sqlite3.Row` objects from tuples, for a result's column names.

    `sqlite3.Row` reads its column names from a SQLite cursor's `description` when it is made;
    a cursor of an in-memory database that selected NULLs under those names provides it (one per
    distinct list of names, made once and kept)."""

    def __init__(self) -> None:
        self._names = sqlite3.connect(":memory:", check_same_thread=False)
        self._cursors: dict[tuple[str, ...], sqlite3.Cursor] = {}

    def for_columns(self, names: Sequence[str]) -> Callable[[Sequence[Any]], sqlite3.Row]:
        key = tuple(names)
        cursor = self._cursors.get(key)
        if cursor is None:
            cursor = self._describing(key)
        return functools.partial(sqlite3.Row, cursor)

    def _describing(self, names: tuple[str, ...]) -> sqlite3.Cursor:
        quoted = ", ".join('NULL AS "{}"'.format(name.replace('"', '""')) for name in names)
        cursor = self._names.execute(f"SELECT {quoted}" if names else "SELECT NULL LIMIT 0")
        cursor.fetchall()
        if len(self._cursors) > 4096:  # queries are few and fixed; this is only a backstop
            self._cursors.clear()
        self._cursors[names] = cursor
        return cursor
