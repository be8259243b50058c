"""Alegra's answers decoded, without I/O: status → exception, error bodies, rate headers.

`decipher` is the single place where an HTTP status becomes an exception of `errors.py`. Whether
a failure is safe to repeat depends on the method: a write (POST, PUT) that may have reached
Alegra becomes `OutcomeUnknown`, never something a retry loop would send again.
"""

from __future__ import annotations

import math
from contextlib import suppress
from typing import Any

import httpx

from sync.alegra.errors import (
    AlegraError,
    AuthFailed,
    NotFound,
    OutcomeUnknown,
    RateLimited,
    Rejected,
    TransportFailed,
    Unavailable,
)

IDEMPOTENT = frozenset({"GET", "DELETE"})
NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
ALEGRA_WINDOW_S = 60.0  # what a 429 without a reset header is taken to mean: wait out the minute


def transport_error(exc: httpx.RequestError, method: str, path: str) -> AlegraError:
    """No HTTP answer: safe to repeat if it never left or is a read; otherwise outcome unknown."""
    detail = f"{type(exc).__name__}: {exc}"[:300]
    if isinstance(exc, NEVER_SENT) or method in IDEMPOTENT:
        return TransportFailed(f"no answer from Alegra ({detail})", method=method, path=path)
    return OutcomeUnknown(
        f"no answer to a {method}; it may have been applied ({detail})", method=method, path=path
    )


def rate_headers(response: httpx.Response) -> dict[str, Any]:
    """The `X-Rate-Limit-*` headers as `RateBudget.observe` keywords (None: absent or garbled)."""
    return {
        "limit": _number(response.headers.get("X-Rate-Limit-Limit"), int),
        "remaining": _number(response.headers.get("X-Rate-Limit-Remaining"), int),
        "reset_s": reset_after_s(response),
    }


def reset_after_s(response: httpx.Response) -> float | None:
    """Seconds until the rate window resets: `X-Rate-Limit-Reset`, else `Retry-After`.

    [unverified] whether Alegra ever sends `Retry-After`; it costs nothing to honour it.
    """
    for name in ("X-Rate-Limit-Reset", "Retry-After"):
        value: float | None = _number(response.headers.get(name), float)
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
    response: httpx.Response,
    *,
    method: str | None = None,
    path: str | None = None,
    default_reset_s: float = ALEGRA_WINDOW_S,
) -> Any:
    """A 2xx answer's JSON (None when empty); any other status raises per the errors.py tree."""
    method = (method or response.request.method).upper()
    path = path or response.request.url.path
    status = response.status_code
    if 200 <= status < 300:
        return _success_body(response, method, path)
    code, message = error_details(response)
    evidence: dict[str, Any] = {"status": status, "code": code, "method": method, "path": path}
    if status == 429:
        reset = reset_after_s(response)
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


def _success_body(response: httpx.Response, method: str, path: str) -> Any:
    if not response.content.strip():
        return None
    try:
        return response.json()
    except ValueError as exc:
        kind = Unavailable if method in IDEMPOTENT else OutcomeUnknown
        raise kind(
            f"Alegra answered {response.status_code} with a body that is not JSON",
            status=response.status_code,
            method=method,
            path=path,
        ) from exc


def error_details(response: httpx.Response) -> tuple[int | str | None, str]:
    """Alegra's code and message: `{"message","code"}`, `{"error": {...}}` or a non-JSON body."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return None, _status_line(response)
    inner = body["error"] if isinstance(body.get("error"), dict) else body
    code = inner.get("code")
    message = inner.get("message")
    text = str(message)[:500] if message not in (None, "") else _status_line(response)
    return (code if isinstance(code, int | str) else None), text


def _status_line(response: httpx.Response) -> str:
    line = f"HTTP {response.status_code} {response.reason_phrase}".strip()
    if response.headers.get("content-type", "").startswith("text/plain") and response.text.strip():
        return f"{line}: {response.text.strip()[:200]}"
    return line
