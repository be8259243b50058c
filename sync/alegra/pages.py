"""Alegra's list paging as pure decisions: what a list body holds, where the next page starts.

Lists take `start` (offset) and `limit` (at most 30). Without `metadata=true` the body is a bare
JSON array; with it, `{"metadata": {"total": N}, "data": [...]}`. The loop ends on a page shorter
than the limit, or once `total` rows have been seen.
"""

from __future__ import annotations

from typing import Any

MAX_PAGE_SIZE = 30


class UnexpectedListBody(ValueError):
    """A list endpoint answered with something that is neither form."""


def page_limit(page_size: int) -> int:
    """The `limit` to ask for: Alegra caps it at 30."""
    return max(1, min(page_size, MAX_PAGE_SIZE))


def parse_list_body(body: Any) -> tuple[list[dict[str, Any]], int | None]:
    """Rows and (when the metadata form was asked for) the total. Raises UnexpectedListBody."""
    total: int | None = None
    if isinstance(body, dict):
        total = _total(body.get("metadata"))
        body = body.get("data")
    if not isinstance(body, list):
        raise UnexpectedListBody(f"expected a JSON array of records, got {type(body).__name__}")
    if not all(isinstance(row, dict) for row in body):
        raise UnexpectedListBody("expected every record in the list to be a JSON object")
    return body, total


def _total(metadata: Any) -> int | None:
    if not isinstance(metadata, dict):
        return None
    raw: Any = metadata.get("total")
    try:
        return int(raw)
    except (TypeError, ValueError):
        return None


def next_start(start: int, limit: int, row_count: int, total: int | None) -> int | None:
    """Where the next page starts, or None when this one was the last.

    A short page is the last one; a page longer than `limit` means the endpoint ignored paging
    and sent the complete list.
    """
    if row_count != limit:
        return None
    following = start + row_count
    if total is not None and following >= total:
        return None
    return following
