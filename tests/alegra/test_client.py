"""The Alegra client against a fake Alegra on loopback: auth, errors, retries, 429s, pages."""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any

import httpx
import pytest
import structlog
from pytest_httpserver import HTTPServer
from werkzeug.wrappers import Request, Response

from sync.alegra.budget import Priority, RateBudget
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
from tests.alegra.conftest import (
    EMAIL,
    TOKEN,
    MakeClient,
    WindowedAlegra,
    json_response,
    sequence,
)
from tests.support.servers import free_port

pytestmark = pytest.mark.anyio
RECEIPT = Priority.RECEIPT


def requests_to(httpserver: HTTPServer, path: str) -> int:
    return sum(1 for request, _ in httpserver.log if request.path == path)


async def test_basic_auth_is_sent_and_ids_stay_strings(
    httpserver: HTTPServer, make_client: MakeClient
) -> None:
    """The e-mail and token go as HTTP Basic; ids come back exactly as Alegra wrote them."""
    auth = "Basic " + base64.b64encode(f"{EMAIL}:{TOKEN}".encode()).decode()
    body = {"id": "00042", "provider": {"id": "5f2b6c1e-9a7d-4c1b-8e2f-0a1b2c3d4e5f"}}
    httpserver.expect_request(
        "/api/v1/bills/00042", method="GET", headers={"Authorization": auth}
    ).respond_with_json(body)
    assert await make_client().get("/bills/00042", priority=RECEIPT) == body


ERRORS = [
    (400, {"message": "El proveedor no existe", "code": 11004}, Rejected, 11004),
    (400, {"error": {"message": "La factura no tiene líneas", "code": 11040}}, Rejected, 11040),
    (401, {"message": "Credenciales incorrectas", "code": "401"}, AuthFailed, "401"),
    (402, {"error": {"message": "Límite del plan", "code": 900}}, AuthFailed, 900),
    (403, {"message": "Sin permiso"}, AuthFailed, None),
    (404, {"message": "No encontrado", "code": 11110}, NotFound, 11110),
    (422, {"error": {"message": "Suscripción repetida", "code": 1}}, Rejected, 1),
]


@pytest.mark.parametrize("case", ERRORS, ids=[f"{c[0]}-{c[2].__name__}" for c in ERRORS])
async def test_each_refusal_becomes_its_exception_with_the_evidence(
    httpserver: HTTPServer,
    make_client: MakeClient,
    case: tuple[int, dict[str, Any], type[AlegraError], int | str | None],
) -> None:
    """A 4xx raises its class from errors.py with status, Alegra code, message, method and path."""
    status, body, kind, code = case
    httpserver.expect_request("/api/v1/bills", method="POST").respond_with_json(body, status)
    with pytest.raises(AlegraError) as caught:
        await make_client().post("/bills", priority=RECEIPT, json={"date": "2025-01-31"})
    inner = body.get("error", body)
    assert type(caught.value) is kind
    assert (caught.value.status, caught.value.code) == (status, code)
    assert caught.value.message == inner["message"]
    assert (caught.value.method, caught.value.path) == ("POST", "/bills")
    assert requests_to(httpserver, "/api/v1/bills") == 1


async def test_a_refusal_without_json_still_says_what_happened(
    httpserver: HTTPServer, make_client: MakeClient
) -> None:
    """A non-JSON error page gives the status line as message and no code."""
    httpserver.expect_request("/api/v1/contacts").respond_with_data(
        "<html>Bad gateway config</html>", status=400, content_type="text/html"
    )
    with pytest.raises(Rejected) as caught:
        await make_client().get("/contacts", priority=RECEIPT)
    assert (caught.value.code, caught.value.message) == (None, "HTTP 400 BAD REQUEST")


async def test_a_read_is_repeated_after_5xx_until_it_succeeds(
    httpserver: HTTPServer, make_client: MakeClient
) -> None:
    """GET survives passing 502/503 answers; every attempt is reported to the metrics seam."""
    httpserver.expect_request("/api/v1/contacts/1234").respond_with_handler(
        sequence(json_response({}, 502), json_response({}, 503), json_response({"id": "1234"}))
    )
    seen: list[tuple[str, str, int | None]] = []
    client = make_client(on_response=lambda m, p, s, _: seen.append((m, p, s)))
    assert await client.get("/contacts/1234", priority=RECEIPT) == {"id": "1234"}
    assert seen == [
        ("GET", "/contacts/{id}", 502),
        ("GET", "/contacts/{id}", 503),
        ("GET", "/contacts/{id}", 200),
    ]


async def test_a_read_gives_up_after_max_attempts(
    httpserver: HTTPServer, make_client: MakeClient
) -> None:
    """A GET that keeps failing raises Unavailable after `max_attempts` tries."""
    httpserver.expect_request("/api/v1/taxes").respond_with_json({"message": "boom"}, 500)
    with pytest.raises(Unavailable) as caught:
        await make_client(max_attempts=3).get("/taxes", priority=RECEIPT)
    assert caught.value.status == 500
    assert requests_to(httpserver, "/api/v1/taxes") == 3


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_a_write_answered_with_5xx_is_never_repeated(
    httpserver: HTTPServer, make_client: MakeClient, status: int
) -> None:
    """POST + 5xx (503 maintenance included) may have created the bill: OutcomeUnknown, once."""
    httpserver.expect_request("/api/v1/bills", method="POST").respond_with_json({}, status)
    with pytest.raises(OutcomeUnknown) as caught:
        await make_client().post("/bills", priority=RECEIPT, json={"date": "2025-01-31"})
    assert caught.value.status == status
    assert requests_to(httpserver, "/api/v1/bills") == 1


async def test_a_write_without_an_answer_is_never_repeated(
    httpserver: HTTPServer, make_client: MakeClient
) -> None:
    """POST + read timeout: the write may have happened, so OutcomeUnknown after one request."""

    def slow(_: Request) -> Response:
        time.sleep(0.2)
        return json_response({"id": "1"}, 201)

    httpserver.expect_request("/api/v1/bills", method="POST").respond_with_handler(slow)
    client = make_client(timeout=httpx.Timeout(2.0, read=0.05))
    with pytest.raises(OutcomeUnknown) as caught:
        await client.post("/bills", priority=RECEIPT, json={"date": "2025-01-31"})
    assert caught.value.status is None
    deadline = time.monotonic() + 2.0
    while requests_to(httpserver, "/api/v1/bills") == 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.02)  # the bill is created all the same, a little later
    await asyncio.sleep(0.05)
    assert requests_to(httpserver, "/api/v1/bills") == 1


class RefusedOnce(httpx.AsyncBaseTransport):
    """The network refuses the first connection, then works."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport(verify=False)
        self.refused = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not self.refused:
            self.refused += 1
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_a_write_that_never_left_is_repeated(
    httpserver: HTTPServer, make_client: MakeClient
) -> None:
    """A refused connection means nothing reached Alegra: the POST is sent again and succeeds."""
    httpserver.expect_request("/api/v1/bills", method="POST").respond_with_json({"id": "7"}, 201)
    client = make_client(transport=RefusedOnce())
    assert await client.post("/bills", priority=RECEIPT, json={"date": "2025-01-31"}) == {"id": "7"}
    assert requests_to(httpserver, "/api/v1/bills") == 1


async def test_a_server_that_refuses_connections_is_a_transport_failure(
    make_client: MakeClient,
) -> None:
    """Connection refused on every try ends in TransportFailed (retryable, nothing was written)."""
    seen: list[int | None] = []
    client = make_client(
        base_url=f"http://127.0.0.1:{free_port()}/api/v1",
        on_response=lambda _m, _p, status, _s: seen.append(status),
    )
    with pytest.raises(TransportFailed):
        await client.post("/contacts", priority=RECEIPT, json={"name": "Ferretería"})
    assert seen == [None, None, None]


async def test_a_429_waits_for_the_reset_then_repeats_the_write(
    httpserver: HTTPServer, make_client: MakeClient
) -> None:
    """A 429 was not processed: any method waits out the window and is sent again."""
    limited = json_response(
        {"message": "Límite de solicitudes excedido"},
        429,
        {"X-Rate-Limit-Limit": "150", "X-Rate-Limit-Remaining": "0", "X-Rate-Limit-Reset": "0.3"},
    )
    httpserver.expect_request("/api/v1/bills", method="POST").respond_with_handler(
        sequence(limited, json_response({"id": "9"}, 201))
    )
    budget = RateBudget(limit=150, window_s=1.0)
    with structlog.testing.capture_logs() as logs:
        client = make_client(budget)
        started = time.monotonic()
        body = await client.post("/bills", priority=RECEIPT, json={"date": "2025-01-31"})
    assert body == {"id": "9"}
    assert time.monotonic() - started >= 0.3
    assert requests_to(httpserver, "/api/v1/bills") == 2
    assert budget.snapshot()["rate_limited_total"] == 1
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == ["alegra.rate_limited"]
    assert TOKEN not in repr(logs)


async def test_rate_limit_waits_are_bounded(
    httpserver: HTTPServer, make_client: MakeClient
) -> None:
    """An endless run of 429s ends in RateLimited after 20 waits instead of hanging forever."""
    headers = {"X-Rate-Limit-Remaining": "0", "X-Rate-Limit-Reset": "0"}
    httpserver.expect_request("/api/v1/contacts").respond_with_json({}, 429, headers)
    with pytest.raises(RateLimited) as caught:
        await make_client(RateBudget(limit=150, window_s=0.2)).get("/contacts", priority=RECEIPT)
    assert caught.value.status == 429
    assert requests_to(httpserver, "/api/v1/contacts") == 20


async def test_the_budget_never_sends_more_than_the_window_allows(
    httpserver: HTTPServer, make_client: MakeClient
) -> None:
    """Ten concurrent reads against 4 per 0.3 s: all succeed, no window exceeded, no 429."""
    alegra = WindowedAlegra(limit=4, window_s=0.3)
    httpserver.expect_request("/api/v1/contacts").respond_with_handler(alegra)
    client = make_client(RateBudget(limit=4, window_s=0.3, reserve=0))
    results = await asyncio.gather(
        *(client.get("/contacts", priority=Priority.EVENT) for _ in range(10))
    )
    assert len(results) == 10
    assert alegra.rejected == 0
    assert max(alegra.per_window) <= 4


async def test_the_headers_correct_the_budget_when_another_user_spends_it(
    httpserver: HTTPServer, make_client: MakeClient
) -> None:
    """When another integration has used 6 of 10, only what Alegra reports left is sent."""
    alegra = WindowedAlegra(limit=10, window_s=0.3, spent_by_others=6)
    httpserver.expect_request("/api/v1/contacts").respond_with_handler(alegra)
    budget = RateBudget(limit=10, window_s=0.3, reserve=0)
    client = make_client(budget)
    await client.get("/contacts", priority=RECEIPT)
    assert budget.snapshot()["remaining"] == 3
    await asyncio.gather(*(client.get("/contacts", priority=RECEIPT) for _ in range(5)))
    assert alegra.rejected == 0
    assert alegra.per_window == [4, 2]


async def test_pages_of_a_bare_array_are_followed_to_the_short_one(
    httpserver: HTTPServer, make_client: MakeClient
) -> None:
    """65 contacts come as pages of 30, 30 and 5 at offsets 0, 30 and 60."""
    contacts = [{"id": str(n)} for n in range(65)]

    def page(request: Request) -> Response:
        start, limit = int(request.args["start"]), int(request.args["limit"])
        return json_response(contacts[start : start + limit])

    httpserver.expect_request("/api/v1/contacts").respond_with_handler(page)
    pages = [p async for p in make_client().iter_pages("/contacts", priority=RECEIPT, page_size=50)]
    assert [(p.start, len(p.rows), p.total) for p in pages] == [
        (0, 30, None),
        (30, 30, None),
        (60, 5, None),
    ]
    assert [row for p in pages for row in p.rows] == contacts


async def test_pages_in_the_metadata_form_stop_at_the_total(
    httpserver: HTTPServer, make_client: MakeClient
) -> None:
    """With a total of 60, two full pages are the whole list: no third request."""
    bills = [{"id": f"b{n}"} for n in range(60)]

    def page(request: Request) -> Response:
        start = int(request.args["start"])
        return json_response({"metadata": {"total": 60}, "data": bills[start : start + 30]})

    httpserver.expect_request("/api/v1/bills").respond_with_handler(page)
    client = make_client()
    pages = [p async for p in client.iter_pages("/bills", priority=RECEIPT, start=0)]
    assert [(p.start, len(p.rows), p.total) for p in pages] == [(0, 30, 60), (30, 30, 60)]
    assert requests_to(httpserver, "/api/v1/bills") == 2


async def test_a_list_endpoint_answering_something_else_is_unavailable(
    httpserver: HTTPServer, make_client: MakeClient
) -> None:
    """A body that is not a list of records raises an error of the tree, not a crash."""
    httpserver.expect_request("/api/v1/taxes").respond_with_json({"message": "mantenimiento"})
    with pytest.raises(Unavailable):
        _ = [p async for p in make_client().iter_pages("/taxes", priority=RECEIPT)]
