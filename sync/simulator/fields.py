"""Small pure checks on request bodies shared by the resources; each raises SimError(400)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sync.simulator.errors import bad_request

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def timestamp() -> str:
    """Alegra's `created_at`/`updated_at` format."""
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")


def required_text(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip():
        raise bad_request(f"El campo {name} es obligatorio")
    return value


def iso_date(body: dict[str, Any], name: str) -> str:
    """A required `YYYY-MM-DD` date, returned as sent."""
    value = body.get(name)
    if not isinstance(value, str) or not _DATE.match(value):
        raise bad_request(f"El campo {name} es obligatorio con formato yyyy-mm-dd")
    try:
        date.fromisoformat(value)
    except ValueError:
        raise bad_request(f"{name} no es una fecha válida") from None
    return value


def amount(value: Any, name: str, *, default: Decimal | None = None) -> Decimal:
    """A non-negative number (JSON number or numeric string) as a Decimal."""
    if value is None and default is not None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise bad_request(f"{name} debe ser un número")
    try:
        result = Decimal(str(value))
    except InvalidOperation:
        raise bad_request(f"{name} debe ser un número") from None
    if not result.is_finite() or result < 0:
        raise bad_request(f"{name} debe ser un número mayor o igual a cero")
    return result


def object_field(body: dict[str, Any], name: str) -> dict[str, Any] | None:
    value = body.get(name)
    if value is not None and not isinstance(value, dict):
        raise bad_request(f"{name} debe ser un objeto")
    return value
