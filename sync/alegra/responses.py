"""Alegra's answers decoded, without I/O: status → exception, error bodies, rate headers.

Sans-I/O: every function takes what came off the wire, `(status, headers, body)` with the body as
bytes (and optionally the reason phrase the server sent), never a client library's response
object; `client.py` does the I/O and calls it.
`decipher` is the single place where an HTTP status becomes an exception of `errors.py`. Whether
a failure is safe to repeat depends on the method: a write (POST, PUT) that may have reached
Alegra becomes `OutcomeUnknown`, never something a retry loop would send again.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from contextlib import suppress
from http import HTTPStatus
from typing import Any

from sync.alegra.errors import (
    AlegraError,
    AuthFailed,
    NotFound,
    OutcomeUnknown,
    RateLimited,
    Rejected,
    Unavailable,
)

IDEMPOTENT = frozenset({"GET", "DELETE"})
ALEGRA_WINDOW_S = 60.0  # what a 429 without a reset header is taken to mean: wait out the minute

Headers = Mapping[str, str]


def _header(headers: Headers, name: str) -> str | None:
    """A header by name, case-insensitively (a plain dict or a client's header mapping)."""
    wanted = name.lower()
    return next((value for key, value in headers.items() if key.lower() == wanted), None)


def rate_headers(headers: Headers) -> dict[str, Any]:
    """The `X-Rate-Limit-*` headers as `RateBudget.observe` keywords (None: absent or garbled)."""
    return {
        "limit": _number(_header(headers, "X-Rate-Limit-Limit"), int),
        "remaining": _number(_header(headers, "X-Rate-Limit-Remaining"), int),
        "reset_s": reset_after_s(headers),
    }


def reset_after_s(headers: Headers) -> float | None:
    """Seconds until the rate window resets: `X-Rate-Limit-Reset`, else `Retry-After`.

    [unverified] whether Alegra ever sends `Retry-After`; it costs nothing to honour it.
    """
    for name in ("X-Rate-Limit-Reset", "Retry-After"):
        value: float | None = _number(_header(headers, name), float)
        if value is not None and value >= 0:
            return value
    return None


def _number(raw: str | None, cast: type[int] | type[float]) -> Any:
    """A header's number, or None when absent or garbled (never NaN or infinity)."""
    if raw is None:
        return None
    with suppress(ValueError):
        value = float(raw.strip())
        return cast(value) if math.isfinite(value) else None
    return None


def decipher(
    status: int,
    headers: Headers,
    body: bytes,
    *,
    method: str,
    path: str,
    reason: str | None = None,
    default_reset_s: float = ALEGRA_WINDOW_S,
) -> Any:
    """A 2xx answer's JSON (None when empty); any other status raises per the errors.py tree."""
    method = method.upper()
    if 200 <= status < 300:
        return _success_body(status, body, method, path)
    code, message = error_details(status, headers, body, reason=reason)
    evidence: dict[str, Any] = {"status": status, "code": code, "method": method, "path": path}
    if status == 429:
        reset = reset_after_s(headers)
        raise RateLimited(
            message, reset_after=default_reset_s if reset is None else reset, **evidence
        )
    raise error_class(status, method)(message, **evidence)


def error_class(status: int, method: str) -> type[AlegraError]:
    """Which exception a non-2xx, non-429 status becomes for this method."""
    if status in (401, 402, 403):
        return AuthFailed
    if status == 404:
        return NotFound
    if status >= 500:  # 503 is maintenance: a write may still have been applied before it
        return Unavailable if method in IDEMPOTENT else OutcomeUnknown
    return Rejected


def _success_body(status: int, body: bytes, method: str, path: str) -> Any:
    if not body.strip():
        return None
    try:
        return json.loads(body)
    except ValueError as exc:
        kind = Unavailable if method in IDEMPOTENT else OutcomeUnknown
        raise kind(
            f"Alegra answered {status} with a body that is not JSON",
            status=status,
            method=method,
            path=path,
        ) from exc


def error_details(
    status: int, headers: Headers, body: bytes, *, reason: str | None = None
) -> tuple[int | str | None, str]:
    """Alegra's code and message: `{"message","code"}`, `{"error": {...}}` or a non-JSON body
    (then the status line: the server's reason phrase, else the standard one)."""
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        return None, _status_line(status, headers, body, reason)
    inner = parsed["error"] if isinstance(parsed.get("error"), dict) else parsed
    code = inner.get("code")
    message = inner.get("message")
    if message in (None, ""):
        text = _status_line(status, headers, body, reason)
    else:
        text = str(message)[:500]
    return (code if isinstance(code, int | str) else None), text


def _status_line(status: int, headers: Headers, body: bytes, reason: str | None) -> str:
    line = f"HTTP {status} {_reason(status) if reason is None else reason}".strip()
    text = body.decode("utf-8", errors="replace").strip()
    if (_header(headers, "content-type") or "").startswith("text/plain") and text:
        return f"{line}: {text[:200]}"
    return line


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""
