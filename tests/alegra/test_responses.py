"""The sans-I/O decoder: plain `(status, headers, body)` in, JSON or an errors.py exception out."""

from __future__ import annotations

from typing import Any

import pytest

from sync.alegra.errors import (
    AlegraError,
    AuthFailed,
    NotFound,
    OutcomeUnknown,
    RateLimited,
    Rejected,
    Unavailable,
)
from sync.alegra.responses import decipher, error_details, rate_headers, reset_after_s

BILLS = "/api/v1/bills"


def test_a_success_is_its_json() -> None:
    """A 2xx body decodes to its JSON, whatever the headers."""
    assert decipher(201, {}, b'{"id": "7"}', method="post", path=BILLS) == {"id": "7"}


def test_an_empty_success_is_none() -> None:
    """A 2xx without a body (a DELETE, say) deciphers to None."""
    assert decipher(200, {}, b"", method="DELETE", path="/api/v1/webhooks/subscriptions/3") is None


@pytest.mark.parametrize(("method", "kind"), [("GET", Unavailable), ("POST", OutcomeUnknown)])
def test_a_success_that_is_not_json_cannot_be_used(method: str, kind: type[AlegraError]) -> None:
    """An unreadable 2xx is Unavailable for a read, OutcomeUnknown for a write that went through."""
    with pytest.raises(kind) as caught:
        decipher(201, {}, b"<html>ok</html>", method=method, path=BILLS)
    assert (caught.value.method, caught.value.path, caught.value.status) == (method, BILLS, 201)


@pytest.mark.parametrize(
    ("status", "method", "kind"),
    [
        (400, "POST", Rejected),
        (401, "GET", AuthFailed),
        (403, "POST", AuthFailed),
        (404, "GET", NotFound),
        (500, "GET", Unavailable),
        (503, "PUT", OutcomeUnknown),
    ],
)
def test_a_status_becomes_its_exception(status: int, method: str, kind: type[AlegraError]) -> None:
    """Each failing status raises its class of the tree, with Alegra's code and message."""
    body = b'{"code": 3061, "message": "La fecha es obligatoria"}'
    with pytest.raises(kind) as caught:
        decipher(status, {"Content-Type": "application/json"}, body, method=method, path=BILLS)
    assert type(caught.value) is kind
    assert (caught.value.status, caught.value.code) == (status, 3061)
    assert str(caught.value).startswith("La fecha es obligatoria")


def test_a_429_waits_for_the_reset_header_or_the_window() -> None:
    """The reset comes from the headers, case-insensitively; without one, the default window."""
    with pytest.raises(RateLimited) as told:
        decipher(429, {"x-rate-limit-reset": "12"}, b"{}", method="POST", path=BILLS)
    assert told.value.reset_after == 12.0
    with pytest.raises(RateLimited) as silent:
        decipher(429, {}, b"", method="POST", path=BILLS, default_reset_s=45.0)
    assert silent.value.reset_after == 45.0


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"error": {"code": "E1", "message": "mal"}}', ("E1", "mal")),
        (b'{"message": ""}', (None, "HTTP 422 Unprocessable Entity")),
        (b"\xff\xfe not utf-8", (None, "HTTP 422 Unprocessable Entity")),
        (b"[1, 2]", (None, "HTTP 422 Unprocessable Entity")),
    ],
)
def test_error_details_read_every_body_shape(
    body: bytes, expected: tuple[int | str | None, str]
) -> None:
    """Nested or flat error objects, and bodies that are not an object, all yield a message."""
    assert error_details(422, {}, body) == expected


def test_a_plain_text_error_is_quoted_in_the_status_line() -> None:
    """A text/plain body (a proxy's page, say) is shown after the status line."""
    headers = {"Content-Type": "text/plain; charset=utf-8"}
    assert error_details(502, headers, b" upstream down \n") == (
        None,
        "HTTP 502 Bad Gateway: upstream down",
    )


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (
            {"X-Rate-Limit-Limit": "60", "X-Rate-Limit-Remaining": "3", "X-Rate-Limit-Reset": "9"},
            {"limit": 60, "remaining": 3, "reset_s": 9.0},
        ),
        ({"retry-after": "5"}, {"limit": None, "remaining": None, "reset_s": 5.0}),
        (
            {"X-Rate-Limit-Limit": "nan", "X-Rate-Limit-Remaining": "x", "Retry-After": "-1"},
            {"limit": None, "remaining": None, "reset_s": None},
        ),
    ],
)
def test_rate_headers_from_a_plain_mapping(
    headers: dict[str, str], expected: dict[str, Any]
) -> None:
    """Rate headers come from any mapping of names to text; garbled values are None."""
    assert rate_headers(headers) == expected
    assert reset_after_s(headers) == expected["reset_s"]


def test_the_servers_reason_phrase_wins_over_the_standard_one() -> None:
    """The status line quotes the reason the server sent, when the caller passes it on."""
    with pytest.raises(Rejected) as caught:
        decipher(400, {}, b"<html/>", method="GET", path=BILLS, reason="BAD REQUEST")
    assert caught.value.message == "HTTP 400 BAD REQUEST"
