"""`POST /webhooks/alegra/{token}`: check the URL token, store the delivery, answer.

Nothing else happens in the request: no Alegra call, no cache write, not even parsing the body.
A delivery is committed to the inbox (group commit through the committer process on SQLite, the
pool on PostgreSQL: `receiver/inbox/`; docs/webhooks.md) before the 2xx; a body that is not JSON
or not a shape we know is stored as such (and logged as `webhook.unusable`) and still answered 2xx,
because every non-2xx counts toward Alegra deleting the subscription. The only non-2xx answers:
404 for a bad token (nothing stored), 413 past the body bound, and 503 if the store could not
commit in time (Alegra retries).
Each company has its own URL: the token names the company it was made for (`TokenTable.resolve`),
and the delivery goes to that company's inbox only. A token of a company that does not exist or
is removed is answered exactly as an unknown token.
The token is a secret: it is never logged (only `fingerprint()`), and uvicorn runs without
access logs (Procfile) so the path never reaches a log line either.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from receiver.errors import ApiError
from receiver.inbox.channel import CommitterOptions
from receiver.inbox.pg_channel import PostgresChannel
from receiver.inbox.writer import InboxWriter
from receiver.live_companies import LiveCompanies
from receiver.openapi import ApiRoute, error, ok
from sync.logs import get_logger, register_secrets
from sync.store.inbox import NewDelivery, NewHandshake
from sync.webhook_tokens import TokenTable, all_tokens, fingerprint

STORE_DEADLINE_S = 3.0  # far inside Alegra's 5 s; past it we answer 503 and Alegra delivers again
HANDSHAKE_WAIT_S = 1.0  # the handshake's note is best-effort; the 2xx is what Alegra needs
JSON = "application/json"


@dataclass(frozen=True)
class Endpoint:
    """What each request needs, looked up once at start-up (`app.state.webhooks`)."""

    tokens: TokenTable
    max_body: int
    writer: InboxWriter
    companies: LiveCompanies


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    """Start the inbox's group-commit writer; at shutdown, commit what is queued. Its batches
    go to the committer process on SQLite, through the pool on PostgreSQL (`pg_channel.py`)."""
    settings = app.state.settings
    register_secrets(all_tokens(settings.secret_keys))
    db = app.state.db
    if db.engine == "postgresql":
        writer = InboxWriter(None, channel=PostgresChannel(db))
    else:
        options = CommitterOptions(log_format=settings.log_format, log_level=settings.log_level)
        writer = InboxWriter(settings.database_path, options=options)
    await writer.start()
    app.state.webhooks = Endpoint(
        TokenTable(settings.secret_keys), settings.max_webhook_body_bytes, writer,
        LiveCompanies(app.state.db))
    try:
        yield
    finally:
        await writer.close()


async def receive(request: Request) -> Response:
    """Store one delivery (or note a handshake) and acknowledge it.

    The hot path: every step here is paid per delivery, so the answer's bytes are formatted
    directly and the per-request log lines are only for the unusual cases."""
    endpoint: Endpoint = request.app.state.webhooks
    company, key_index = await _resolve(endpoint, request.path_params["token"])
    body = await read_bounded(request, endpoint.max_body)
    if not body or body.isspace():
        return await _handshake(endpoint.writer, NewHandshake(key_index, company))
    inbox_id = await _store(endpoint.writer, NewDelivery(body, key_index, company))
    return Response(b'{"status":"stored","id":%d}' % inbox_id, media_type=JSON)


async def _resolve(endpoint: Endpoint, token: str) -> tuple[str, int]:
    """(company, key index) of the URL's token; 404, as for any unknown path, when no key made
    it or its company does not exist or is removed."""
    resolved = endpoint.tokens.resolve(token)
    if resolved is None:
        get_logger(token_fp=fingerprint(token)).warning("webhook.bad_token")
        raise HTTPException(404, "Not Found")
    if not await _is_live(endpoint.companies, resolved[0]):
        get_logger(token_fp=fingerprint(token), company=resolved[0]).warning(
            "webhook.company_not_live")
        raise HTTPException(404, "Not Found")
    return resolved


async def _is_live(companies: LiveCompanies, company: str) -> bool:
    """Whether the company takes deliveries. ApiError 503 when the store cannot say."""
    try:
        return await companies.contains(company)
    except Exception as exc:
        get_logger(company=company).error("webhook.company_lookup_failed",
                                          error=type(exc).__name__)
        raise ApiError(503, "unavailable", "delivery not stored; deliver again",
                       headers={"Retry-After": "1"}) from exc


async def read_bounded(request: Request, limit: int) -> bytes:
    """The body, read as it streams in; ApiError 413 as soon as it passes `limit` bytes.

    Reads the ASGI messages directly (`request.stream()` is an async generator, which asyncio
    registers and finalises per request); a body in one message is returned as is."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "too_large", f"webhook body larger than {limit} bytes")


async def _store(writer: InboxWriter, delivery: NewDelivery) -> int:
    """Wait for the row's commit. ApiError 503 if it fails or takes too long."""
    try:
        return await writer.submit(delivery, timeout_s=STORE_DEADLINE_S)
    except Exception as exc:
        get_logger().error("webhook.store_failed", error=type(exc).__name__)
        raise ApiError(
            503, "unavailable", "delivery not stored; deliver again",
            headers={"Retry-After": "1"},
        ) from exc


async def _handshake(writer: InboxWriter, handshake: NewHandshake) -> Response:
    """Alegra's empty-body check before it creates a subscription: 200, and a note of it."""
    try:
        await writer.submit(handshake, timeout_s=HANDSHAKE_WAIT_S)
    except Exception as exc:
        get_logger().warning("webhook.handshake_not_recorded", error=type(exc).__name__)
    get_logger().info("webhook.handshake", key_index=handshake.key_index,
                      company=handshake.company_id)
    return Response(b'{"status":"ok"}', media_type=JSON)


RECEIVE: dict[str, Any] = {
    "operationId": "receiveAlegraWebhook",
    "summary": "Receive an Alegra webhook delivery",
    "security": [],
    "description": (
        "Alegra's deliveries and its empty-body subscription handshake. The token in the path "
        "is the secret (`alegra-sync webhooks register` makes it). A delivery is committed "
        "before the 2xx; malformed bodies are stored and answered 2xx."
    ),
    "requestBody": {"required": False, "content": {"application/json": {"schema": {
        "description": "Any body: Alegra's deliveries are `{\"subject\": \"edit-client\", "
        "\"message\": {...}}`; anything else is stored as malformed, and answered 2xx too.",
        "examples": [{"subject": "edit-client", "message": {"client": {"id": "1"}}}],
    }}}},
    "responses": {
        "200": ok("Stored (or handshake noted)", {"type": "object", "properties": {
            "status": {"type": "string", "enum": ["stored", "ok"]},
            "id": {"type": "integer"},
        }}),
        "404": error("Unknown token"),
        "413": error("Body too large"),
        "503": error("Could not store in time; deliver again"),
    },
}
routes: list[BaseRoute] = [ApiRoute("/webhooks/alegra/{token}", receive, "POST", RECEIVE)]
