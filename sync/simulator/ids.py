"""Record ids as Alegra issues them since 2025: strings, numeric-looking at first, then UUIDs.

Each resource's first `numeric_ids` new records get numbers ("1", "2", …) and later ones UUIDs,
so a client that does `int(id)` or sorts ids as numbers breaks in tests, as it would in Alegra.
"""

from __future__ import annotations

import uuid


class IdMaker:
    """Issues one resource's ids and remembers the order they were issued in."""

    def __init__(self, numeric_ids: int, first_number: int = 1) -> None:
        self._numbers_left = numeric_ids
        self._next_number = first_number
        self._order: dict[str, int] = {}

    def reserve(self, record_id: str) -> str:
        """Record an id chosen elsewhere (seeded data) and keep numbers after it unique."""
        if record_id.isdigit():
            self._next_number = max(self._next_number, int(record_id) + 1)
        self._order.setdefault(record_id, len(self._order))
        return record_id

    def next(self) -> str:
        if self._numbers_left > 0:
            self._numbers_left -= 1
            record_id = str(self._next_number)
            self._next_number += 1
        else:
            record_id = str(uuid.uuid4())
        self._order[record_id] = len(self._order)
        return record_id

    def sequence(self, record_id: str) -> int:
        """Creation rank of an id (unknown ids sort last)."""
        return self._order.get(record_id, len(self._order))
