"""Query-string parameters of the admin endpoints, and opaque cursors for keyset paging.

Each reader takes the request's query parameters and returns a clean value or raises a 400
`ApiError` naming the parameter, so an endpoint reads like its documentation. A cursor is the
sort key of the last row of a page, JSON in url-safe base64: opaque to clients, cheap to check.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Sequence
from datetime import date
from typing import Any

from starlette.datastructures import QueryParams

from receiver.errors import ApiError
from sync.dominican import loose_tax_id

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
MAX_TEXT = 200
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


def invalid(name: str, message: str) -> ApiError:
    return ApiError(400, "invalid_parameter", message, field=name)


def limit(params: QueryParams, default: int = DEFAULT_LIMIT, maximum: int = MAX_LIMIT) -> int:
    """`limit`: rows per page, 1..maximum."""
    raw = params.get("limit")
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= maximum:
        raise invalid("limit", f"limit: a whole number from 1 to {maximum}")
    return int(raw)


def text(params: QueryParams, name: str, max_length: int = MAX_TEXT) -> str | None:
    """A free-text parameter, stripped; None when absent or blank."""
    raw = params.get(name)
    if raw is None or not raw.strip():
        return None
    if len(raw) > max_length or "\x00" in raw:
        raise invalid(name, f"{name}: at most {max_length} characters")
    return raw.strip()


def choice(params: QueryParams, name: str, allowed: Sequence[str]) -> str | None:
    """One of `allowed`, or None when absent."""
    raw = text(params, name)
    if raw is not None and raw not in allowed:
        raise invalid(name, f"{name}: one of {', '.join(allowed)}")
    return raw


def flag(params: QueryParams, name: str, default: bool = False) -> bool:
    """A boolean: true/false, 1/0, yes/no."""
    raw = text(params, name)
    if raw is None:
        return default
    if raw.lower() in _TRUE | _FALSE:
        return raw.lower() in _TRUE
    raise invalid(name, f"{name}: true or false")


def tax_id(params: QueryParams, name: str = "tax_id") -> str | None:
    """An RNC (9 digits) or cédula (11) in any formatting, as digits. The check digit is not
    verified: Alegra keeps numbers as they were typed, and those must still be found."""
    raw = text(params, name)
    if raw is None:
        return None
    number = loose_tax_id(raw) if re.fullmatch(r"[\d\s.\-]+", raw) else None
    if number is None:
        raise invalid(name, f"{name}: an RNC (9 digits) or cédula (11 digits); dashes, spaces"
                            " and dots allowed")
    return number


def day(params: QueryParams, name: str) -> str | None:
    """A calendar date, YYYY-MM-DD."""
    raw = text(params, name)
    if raw is None:
        return None
    problem = invalid(name, f"{name}: a date as YYYY-MM-DD")
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
        raise problem
    try:
        return date.fromisoformat(raw).isoformat()
    except ValueError as exc:
        raise problem from exc


def encode_cursor(key: Sequence[Any]) -> str:
    """The cursor that continues after a row with this sort key."""
    packed = json.dumps(list(key), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(packed).decode().rstrip("=")


def cursor(params: QueryParams, types: Sequence[type]) -> tuple[Any, ...] | None:
    """Decode `cursor` into a sort key whose parts have these types. 400 if it is not ours."""
    raw = text(params, "cursor", max_length=1000)
    if raw is None:
        return None
    try:
        key = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (binascii.Error, ValueError) as exc:
        raise invalid("cursor", "cursor: pass back a next_cursor this API returned") from exc
    if (not isinstance(key, list) or len(key) != len(types)
            or not all(type(part) is kind for part, kind in zip(key, types, strict=True))
            or not all(_fits_sqlite(part) for part in key)):
        raise invalid("cursor", "cursor: pass back a next_cursor this API returned")
    return tuple(key)


def _fits_sqlite(part: Any) -> bool:
    """SQLite integers are 64-bit signed: a larger one would fail the query (a 500), not match."""
    return not isinstance(part, int) or -(2**63) <= part < 2**63
