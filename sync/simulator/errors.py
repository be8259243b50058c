"""Errors the simulator answers with, always in Alegra's body shape.

Alegra usually answers `{"message": ..., "code": ...}` and sometimes wraps it in `{"error": {...}}`;
`Faults.wrap_errors` switches to the wrapped variant so clients' defensive parsing is exercised.
Application codes are Alegra's where the facts sheet names one; elsewhere the code repeats the
HTTP status [unverified: Alegra's codes for those cases are not documented].
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.responses import JSONResponse

PROVIDER_NOT_FOUND = 11004
PROVIDER_DISABLED = 2094
NO_LINES = 11040
BILL_NOT_FOUND = 11110
INVALID_ATTACHMENT = 904
INVALID_IDENTIFICATION = 11059  # contrary mode refuses a type code (one of Alegra's tax-id codes)

# Same event + URL subscribed twice: Alegra answers 400, 409 or 422 [unverified which]; change here.
DUPLICATE_SUBSCRIPTION_STATUS = 409


class SimError(Exception):
    """An answer other than success: HTTP status, Alegra application code, message."""

    def __init__(self, status: int, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = status if code is None else code


def bad_request(message: str, code: int | None = None) -> SimError:
    return SimError(400, message, code)


def not_found(what: str, code: int | None = None) -> SimError:
    return SimError(404, f"{what} no existe", code)


def error_body(status: int, message: str, code: int | None, *, wrap: bool) -> dict[str, Any]:
    """Alegra's error body, plain or wrapped in `{"error": ...}`."""
    body: dict[str, Any] = {"message": message, "code": status if code is None else code}
    return {"error": body} if wrap else body


def error_response(exc: SimError, *, wrap: bool,
                   headers: Mapping[str, str] | None = None) -> JSONResponse:
    body = error_body(exc.status, exc.message, exc.code, wrap=wrap)
    return JSONResponse(body, exc.status, headers=headers)
