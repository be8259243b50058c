"""/v1/webhook-endpoints: a partner registers, lists, rotates, tests and deletes the endpoints
its notifications go to, and reads and replays their deliveries.

Any key manages its own partner's endpoints (an admin's too): another partner's endpoint is the
same 404 as none. The URL is checked here (https, a name resolving to public addresses only,
unless PARTNER_WEBHOOKS_ALLOW_PRIVATE) and again by the worker before every attempt. The secret
is stored encrypted under CREDENTIALS_KEY and answered only by the call that makes it. The web
process only writes rows; the worker's notifier sends (`sync.notifications.delivery`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute

from receiver import query
from receiver import webhook_endpoints_spec as spec
from receiver.auth import authenticate
from receiver.errors import ApiError
from receiver.json_body import read_model
from receiver.openapi import ApiRoute
from sync.logs import get_logger
from sync.notifications import endpoints, queue
from sync.notifications.addresses import UnsafeUrl, check_url
from sync.notifications.contract import EndpointIn, ReplayIn
from sync.notifications.endpoints import WithSecret
from sync.notifications.records import DeliveryState, Endpoint
from sync.settings import Settings, SettingsError
from sync.store.db import Database
from sync.store.partners import Partner

OPENAPI_MODELS = spec.OPENAPI_MODELS
MAX_BODY = 16 * 1024
DELIVERY_STATES = tuple(state.value for state in DeliveryState)
Model = TypeVar("Model", bound=BaseModel)


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    """Say at start-up when the address rules are lifted (registrations take any URL)."""
    settings: Settings = app.state.settings
    if settings.partner_webhooks_allow_private:
        get_logger(process="web").warning(
            "notifications.private_addresses_allowed", setting="PARTNER_WEBHOOKS_ALLOW_PRIVATE",
            meaning="endpoints may be http:// and private, loopback or link-local addresses")
    yield


def _db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def _not_found() -> ApiError:
    return ApiError(404, "not_found", "no webhook endpoint with this id")


def _with_secret(made: WithSecret) -> dict[str, Any]:
    return {**made.endpoint.view(), "secret": made.secret}


async def _body(request: Request, model: type[Model]) -> Model:
    """The JSON body as `model`. Raises ApiError 400/413/415/422 (nothing stored)."""
    return await read_model(request, model, max_bytes=MAX_BODY, noun="the body")


async def _own(request: Request) -> tuple[Partner, Endpoint]:
    partner = await authenticate(request)
    endpoint = await endpoints.get_endpoint(
        _db(request), partner.id, request.path_params["endpoint_id"])
    if endpoint is None:
        raise _not_found()
    return partner, endpoint


async def create(request: Request) -> JSONResponse:
    """POST /v1/webhook-endpoints: 201 with the endpoint and its secret (shown once)."""
    partner = await authenticate(request)
    body = await _body(request, EndpointIn)
    settings: Settings = request.app.state.settings
    try:
        await check_url(body.url, allow_private=settings.partner_webhooks_allow_private)
    except UnsafeUrl as exc:
        raise ApiError(422, "invalid_field", f"url: {exc}", field="url") from None
    try:
        made = await endpoints.create_endpoint(
            _db(request), settings, partner_id=partner.id, url=body.url, events=body.events)
    except SettingsError as exc:
        raise ApiError(503, "credentials_key_missing", "CREDENTIALS_KEY is not set on this "
                       "deployment: a signing secret cannot be stored") from exc
    get_logger(endpoint_id=made.endpoint.id, partner=partner.name).info("webhook_endpoint.added")
    return JSONResponse(_with_secret(made), status_code=201,
                        headers={"Location": f"/v1/webhook-endpoints/{made.endpoint.id}"})


async def list_all(request: Request) -> JSONResponse:
    """GET /v1/webhook-endpoints: every endpoint of the key's partner (one page)."""
    partner = await authenticate(request)
    found = await endpoints.list_endpoints(_db(request), partner.id)
    return JSONResponse({"data": [e.view() for e in found], "next_cursor": None})


async def read(request: Request) -> JSONResponse:
    """GET /v1/webhook-endpoints/{endpoint_id}."""
    _, endpoint = await _own(request)
    return JSONResponse(endpoint.view())


async def delete(request: Request) -> JSONResponse:
    """DELETE /v1/webhook-endpoints/{endpoint_id}: nothing more is sent to it."""
    partner, endpoint = await _own(request)
    deleted = await endpoints.delete_endpoint(_db(request), partner.id, endpoint.id)
    if deleted is None:
        raise _not_found()
    get_logger(endpoint_id=endpoint.id, partner=partner.name).info("webhook_endpoint.deleted")
    return JSONResponse(deleted.view())


async def rotate(request: Request) -> JSONResponse:
    """POST /v1/webhook-endpoints/{endpoint_id}/rotate-secret: a new secret, the old one
    signing beside it for 24 h."""
    partner, endpoint = await _own(request)
    try:
        made = await endpoints.rotate_secret(
            _db(request), request.app.state.settings, partner.id, endpoint.id)
    except SettingsError as exc:
        raise ApiError(503, "credentials_key_missing", "CREDENTIALS_KEY is not set on this "
                       "deployment: a signing secret cannot be stored") from exc
    if made is None:
        raise _not_found()
    get_logger(endpoint_id=endpoint.id, partner=partner.name).info("webhook_endpoint.rotated")
    return JSONResponse(_with_secret(made))


async def test(request: Request) -> JSONResponse:
    """POST /v1/webhook-endpoints/{endpoint_id}/test: a `ping`, due now."""
    _, endpoint = await _own(request)
    delivery = await queue.ping(_db(request), endpoint)
    return JSONResponse(delivery.view(), status_code=202)


async def deliveries(request: Request) -> JSONResponse:
    """GET /v1/webhook-endpoints/{endpoint_id}/deliveries: newest first, cursor-paged."""
    _, endpoint = await _own(request)
    params = request.query_params
    limit = query.limit(params)
    after = query.cursor(params, (str, str))
    rows = await queue.list_deliveries(
        _db(request), endpoint.id, state=query.choice(params, "state", DELIVERY_STATES),
        limit=limit + 1, after=(after[0], after[1]) if after else None)
    page = rows[:limit]
    next_cursor = (query.encode_cursor([page[-1].created_at, page[-1].id])
                   if len(rows) > limit else None)
    return JSONResponse({"data": [d.view() for d in page], "next_cursor": next_cursor})


async def replay_one(request: Request) -> JSONResponse:
    """POST /v1/webhook-endpoints/{endpoint_id}/deliveries/{delivery_id}/replay."""
    partner, endpoint = await _own(request)
    delivery_id = request.path_params["delivery_id"]
    db = _db(request)
    if not await queue.replay_one(db, endpoint.id, delivery_id):
        found = await queue.get_delivery(db, endpoint.id, delivery_id)
        if found is None:
            raise ApiError(404, "not_found", "no delivery with this id for this endpoint")
        raise ApiError(409, "not_failed", f"only a failed delivery is replayed; this one is "
                       f"{found.state.value}", extra={"state": found.state.value})
    get_logger(endpoint_id=endpoint.id, delivery_id=delivery_id,
               partner=partner.name).info("webhook_delivery.replay_requested")
    replayed = await queue.get_delivery(db, endpoint.id, delivery_id)
    assert replayed is not None
    return JSONResponse(replayed.view(), status_code=202)


async def replay_failed(request: Request) -> JSONResponse:
    """POST /v1/webhook-endpoints/{endpoint_id}/replay-failed: every failed delivery since."""
    partner, endpoint = await _own(request)
    body = await _body(request, ReplayIn)
    since = _time(body.since)
    count = await queue.replay_failed_since(_db(request), endpoint.id, since)
    get_logger(endpoint_id=endpoint.id, partner=partner.name, since=since,
               count=count).info("webhook_delivery.replay_requested")
    return JSONResponse({"replayed": count}, status_code=202)


def _time(text: str) -> str:
    """An ISO 8601 time with its offset → the store's format (UTC). Raises ApiError 422."""
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise ApiError(422, "invalid_field", "since: an ISO 8601 time with its offset, e.g. "
                       "2026-12-07T00:00:00+00:00", field="since")
    return parsed.astimezone(UTC).isoformat(timespec="microseconds")


_ID = "/v1/webhook-endpoints/{endpoint_id}"
routes: list[BaseRoute] = [
    ApiRoute("/v1/webhook-endpoints", create, "POST", spec.CREATE),
    ApiRoute("/v1/webhook-endpoints", list_all, "GET", spec.LIST),
    ApiRoute(_ID, read, "GET", spec.GET),
    ApiRoute(_ID, delete, "DELETE", spec.DELETE),
    ApiRoute(_ID + "/rotate-secret", rotate, "POST", spec.ROTATE),
    ApiRoute(_ID + "/test", test, "POST", spec.TEST),
    ApiRoute(_ID + "/deliveries", deliveries, "GET", spec.DELIVERIES),
    ApiRoute(_ID + "/deliveries/{delivery_id}/replay", replay_one, "POST", spec.REPLAY_ONE),
    ApiRoute(_ID + "/replay-failed", replay_failed, "POST", spec.REPLAY_FAILED),
]
