"""List parameters shared by every Alegra list: paging, ordering, the metadata envelope (pure)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sync.simulator.errors import bad_request

MAX_LIMIT = 30
# A `limit` above 30 is answered 400 rather than clamped [unverified which Alegra does]: a client
# that asks for more than it can get then fails loudly in tests instead of silently missing rows.
REJECT_OVERSIZED_LIMIT = True


def page_bounds(params: Mapping[str, str]) -> tuple[int, int]:
    """`start` and `limit` from the query. Raises SimError(400) on a malformed value."""
    start = _int_param(params, "start", 0)
    limit = _int_param(params, "limit", MAX_LIMIT)
    if start < 0 or limit < 1:
        raise bad_request("start debe ser >= 0 y limit >= 1")
    if limit > MAX_LIMIT:
        if REJECT_OVERSIZED_LIMIT:
            raise bad_request(f"El límite máximo es {MAX_LIMIT}")
        limit = MAX_LIMIT
    return start, limit


def _int_param(params: Mapping[str, str], name: str, default: int) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise bad_request(f"{name} debe ser un número entero") from None


def ordered(
    rows: Sequence[dict[str, Any]], params: Mapping[str, str], sequence: Callable[[str], int]
) -> list[dict[str, Any]]:
    """Rows in `order_field`/`order_direction` order; creation order (`sequence` of the id) by
    default and for `order_field=id`, since ids mix numbers and UUIDs."""
    direction = params.get("order_direction", "ASC").upper()
    if direction not in {"ASC", "DESC"}:
        raise bad_request("order_direction debe ser ASC o DESC")
    field = params.get("order_field") or "id"
    if field == "id":
        result = sorted(rows, key=lambda row: sequence(str(row["id"])))
    else:
        result = sorted(rows, key=lambda row: _sort_key(row.get(field)))
    return result[::-1] if direction == "DESC" else result


def _sort_key(value: Any) -> tuple[int, Any]:
    if value is None:
        return (2, "")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (0, value)
    return (1, str(value).lower())


def paged(
    rows: Sequence[dict[str, Any]], params: Mapping[str, str], sequence: Callable[[str], int]
) -> Any:
    """One page of `rows`: a bare list, or `{"metadata": {"total"}, "data"}` with metadata=true."""
    start, limit = page_bounds(params)
    page = ordered(rows, params, sequence)[start : start + limit]
    return with_metadata(page, len(rows), params)


def with_metadata(page: list[dict[str, Any]], total: int, params: Mapping[str, str]) -> Any:
    if params.get("metadata", "").lower() == "true":
        return {"metadata": {"total": total}, "data": page}
    return page
