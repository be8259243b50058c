"""Errors become HTTP in one place.

Endpoints raise `ApiError` (or let Starlette raise `HTTPException`); `HANDLERS` turns each into
the one error body shape every endpoint shares:

    {"error": {"code": "invalid_field", "message": "...", "field": "supplier.tax_id"}}

`field` is the JSON path of the offending input, present only where it applies. A 500 never
carries the exception's text: that could hold a secret; it is logged (redacted) instead. A client
that disconnects before its body is read is no error of ours: one info line, no traceback. A
database that cannot be reached (PostgreSQL restarting, a network fault) is a 503
`database_unavailable` with `Retry-After`, never a 500 and never a 2xx: whatever the request was
to write may not be committed, and sending it again (with the same `Idempotency-Key`) is safe.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from sync.logs import get_logger
from sync.store.db import DatabaseUnavailable

RETRY_AFTER_S = 1  # a PostgreSQL restart takes a few seconds; the pool reconnects meanwhile


class ApiError(Exception):
    """An error response: HTTP status, machine code, message, and the field at fault if any."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        field: str | None = None,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.extra = extra or {}
        self.headers = headers


class ErrorDetail(BaseModel):
    """More evidence may follow, e.g. `expected` and `given` for `total_mismatch`, `receipt_id`
    for `idempotency_key_reused`."""

    model_config = ConfigDict(extra="allow")
    code: str = Field(examples=["invalid_field"])
    message: str
    field: str | None = Field(None, description="JSON path of the input at fault, e.g. "
                              "`lines[2].amount`, or the header's name; absent when none is.")


class Error(BaseModel):
    """Every error answer's body."""

    error: ErrorDetail


def error_body(code: str, message: str, field: str | None = None, **extra: Any) -> dict[str, Any]:
    detail = ErrorDetail(code=code, message=message, field=field, **extra)
    return Error(error=detail).model_dump(exclude_none=True)


def log_refusal(request: Request, status: int, code: str, field: str | None = None) -> None:
    """One `http.refused` line per refused API request (4xx under /v1/): the partner, status,
    code and field; never the key, the body or the query. Webhook refusals log their own (the
    path holds the URL token)."""
    if 400 <= status < 500 and request.url.path.startswith("/v1/"):
        partner = getattr(request.state, "partner", None)
        get_logger().info("http.refused", method=request.method, path=request.url.path,
                          status=status, code=code, field=field,
                          partner=None if partner is None else partner.name)


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    log_refusal(request, exc.status, exc.code, exc.field)
    body = error_body(exc.code, exc.message, exc.field, **exc.extra)
    return JSONResponse(body, status_code=exc.status, headers=exc.headers)


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
}


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    log_refusal(request, exc.status_code, code)
    return JSONResponse(
        error_body(code, str(exc.detail)), status_code=exc.status_code, headers=exc.headers
    )


async def _client_disconnected(request: Request, _: Exception) -> Response:
    get_logger(path=request.url.path).info("http.client_disconnected")
    return JSONResponse(error_body("client_disconnected", "the client left"), status_code=400)


async def _database_unavailable(request: Request, exc: Exception) -> Response:
    """503 when the database cannot be reached: one warning line (no traceback), and the
    client sends it again. Never a 2xx: the request's write may not be committed."""
    get_logger(path=request.url.path, method=request.method).warning(
        "http.database_unavailable", error=type(exc.__cause__ or exc).__name__)
    body = error_body("database_unavailable", "the database cannot be reached right now, so "
                      "this request may not have been stored: send it again after Retry-After "
                      "seconds (a receipt with the same Idempotency-Key)")
    return JSONResponse(body, status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)})


async def _unexpected(request: Request, exc: Exception) -> Response:
    get_logger(path=request.url.path).error("http.unhandled", exc_info=exc)
    return JSONResponse(error_body("internal", "internal error"), status_code=500)


HANDLERS: dict[Any, Any] = {
    ApiError: _api_error,
    HTTPException: _http_exception,
    ClientDisconnect: _client_disconnected,
    DatabaseUnavailable: _database_unavailable,
    Exception: _unexpected,
}
