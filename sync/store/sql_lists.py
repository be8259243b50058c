"""Small pieces of SQL that both engines (SQLite and PostgreSQL) read the same way.

A list of values is bound one placeholder each (`IN (?, ?, ?)`), never as one JSON text read back
with SQLite's `json_each`; a long list goes in chunks, below either engine's limit of bound
parameters per statement (SQLite 32,766, PostgreSQL 65,535).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")
CHUNK = 500  # values per `IN (…)` list: far below either engine's limit


def marks(count: int) -> str:
    """`?, ?, ?` for `count` values (at least one: `IN ()` is not SQL PostgreSQL reads)."""
    if count < 1:
        raise ValueError("an IN list needs at least one value")
    return ", ".join("?" * count)


def chunks(values: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    """`values` in slices of at most `size`, in order (none for an empty sequence)."""
    for start in range(0, len(values), size):
        yield values[start:start + size]
