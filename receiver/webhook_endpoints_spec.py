"""The partner notifications' part of /openapi.json: /v1/webhook-endpoints and its schemas.

Data only; the routes of `receiver.webhook_endpoints` carry these operations. The answers are
described by the models here (what `sync.notifications.records` `Endpoint.view` and
`Delivery.view` build); the request bodies are `sync.notifications.contract`'s models.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, Field

from receiver.inspect_spec import BAD_QUERY, CURSOR, LIMIT, error, ok, page_of, param, ref
from sync.notifications.contract import EndpointIn, ReplayIn
from sync.notifications.records import DeliveryState, EndpointState

PARTNER: dict[str, Any] = {"security": [{"partnerKey": []}]}
AUTH = {"401": error("Missing, unknown or revoked key")}
NOT_FOUND = {"404": error("No such endpoint of this key's partner")}


class WebhookEndpoint(BaseModel):
    """A partner's endpoint. Never its secret (only the answers that make one show it, once)."""

    id: str = Field(examples=["whe_0b36c4217fedc9281ef072f7"])
    url: str
    events: list[str] = Field(description="The event types it receives.")
    all_events: bool = Field(description="Registered without a list: every type, new ones too.")
    state: EndpointState = Field(description=(
        "`disabled`: it answered 410 Gone, or failed every attempt for 3 days "
        "(`state_reason`); a replay enables it again."))
    state_reason: str | None
    failing_since: dt.datetime | None = Field(description=(
        "The first failed attempt since the last delivered one."))
    previous_secret_expires_at: dt.datetime | None = Field(description=(
        "After a rotation: until then the previous secret signs beside the new one."))
    created_at: dt.datetime
    updated_at: dt.datetime


class WebhookEndpointWithSecret(WebhookEndpoint):
    secret: str = Field(pattern="^whsec_", description=(
        "The signing secret (Standard Webhooks), shown this once: store it now."))


class WebhookDelivery(BaseModel):
    """One event sent to one endpoint: its attempts and how the last one went."""

    id: str = Field(examples=["dlv_5f1e0c3a9b7d4e2f8a6c1b0d"])
    webhook_id: str = Field(description="The `webhook-id` header: the same on every attempt.")
    type: str = Field(examples=["receipt.completed"])
    receipt_id: str | None
    state: DeliveryState
    attempts: int
    next_attempt_at: dt.datetime | None
    last_attempt_at: dt.datetime | None
    last_status: int | None = Field(description="The endpoint's HTTP status; null: no answer.")
    last_latency_ms: int | None
    last_error: str | None = Field(description="Why the last attempt failed (the first 1 KiB "
                                   "of the answer, a timeout, a refused address).")
    delivered_at: dt.datetime | None
    created_at: dt.datetime


class Replayed(BaseModel):
    replayed: int = Field(description="How many failed deliveries are pending again.")


OPENAPI_MODELS = (EndpointIn, ReplayIn, WebhookEndpoint, WebhookEndpointWithSecret,
                  WebhookDelivery, Replayed)
_LOCATION = {"Location": {"schema": {"type": "string"},
                          "description": "/v1/webhook-endpoints/{id}"}}
_BODY_ERRORS = {
    "400": error("Malformed JSON"), "413": error("Body over 16 KiB"),
    "415": error("Body not application/json"),
    "422": error("`invalid_field`: a field breaks a rule (`field` names it): not https, an "
                 "address that is private, loopback, link-local or a metadata service, an "
                 "unknown event type"),
}
_NO_KEY = {"503": error("`credentials_key_missing`: CREDENTIALS_KEY is not set on the "
                        "deployment (secrets are stored encrypted under it)")}


ENDPOINT_ID = {"name": "endpoint_id", "in": "path", "required": True,
               "schema": {"type": "string", "pattern": "^whe_[0-9a-f]{24}$"}}
DELIVERY_ID = {"name": "delivery_id", "in": "path", "required": True,
               "schema": {"type": "string", "pattern": "^dlv_[0-9a-f]{24}$"}}


def _op(op_id: str, summary: str, description: str, responses: dict[str, Any],
        parameters: list[dict[str, Any]] | None = None, *, by_id: bool = True,
        ) -> dict[str, Any]:
    """A partner's operation; `by_id`: on one endpoint (its id in the path)."""
    ids = [ENDPOINT_ID] if by_id else []
    return {"operationId": op_id, "summary": summary, "description": description, **PARTNER,
            "parameters": [*ids, *(parameters or [])], "responses": {**responses, **AUTH}}


def _body(model: type[BaseModel]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {
        "application/json": {"schema": ref(model)}}}}


CREATE = {**_op(
    "createWebhookEndpoint", "Register an endpoint for notifications",
    "Standard Webhooks 1.0: each delivery is a POST with `webhook-id`, `webhook-timestamp` and "
    "`webhook-signature`; the body is `{type, timestamp, data}`. The answer holds the signing "
    "secret, once. Nothing is stored when the request is refused.",
    {"201": {**ok("The endpoint and its secret", ref(WebhookEndpointWithSecret)),
             "headers": _LOCATION}, **_BODY_ERRORS, **_NO_KEY}, by_id=False),
    **_body(EndpointIn)}
LIST = _op("listWebhookEndpoints", "This partner's endpoints", "",
           {"200": ok("Every endpoint (one page)", page_of("WebhookEndpoint"))}, by_id=False)
GET = _op("getWebhookEndpoint", "One endpoint", "",
          {"200": ok("The endpoint", ref(WebhookEndpoint)), **NOT_FOUND})
DELETE = _op("deleteWebhookEndpoint", "Delete an endpoint",
             "Nothing more is sent to it; its pending deliveries end `failed`.",
             {"200": ok("The endpoint, now deleted", ref(WebhookEndpoint)), **NOT_FOUND})
ROTATE = _op(
    "rotateWebhookSecret", "A new signing secret",
    "The previous secret keeps signing beside the new one for 24 h (`webhook-signature` then "
    "holds two signatures); a second rotation ends the first one's overlap.",
    {"200": ok("The endpoint and its new secret", ref(WebhookEndpointWithSecret)),
     **NOT_FOUND, **_NO_KEY})
TEST = _op("testWebhookEndpoint", "Send a `ping`",
           "A `ping` event to this endpoint, due now (whatever its event list).",
           {"202": ok("The ping's delivery", ref(WebhookDelivery)), **NOT_FOUND})
DELIVERIES = _op(
    "listWebhookDeliveries", "The endpoint's deliveries, newest first", "",
    {"200": ok("A page of deliveries", page_of("WebhookDelivery")), **NOT_FOUND, **BAD_QUERY},
    [param("state", "Delivery state.", {"type": "string", "enum": [
        s.value for s in DeliveryState]}), LIMIT, CURSOR])
REPLAY_ONE = _op(
    "replayWebhookDelivery", "Send a failed delivery again",
    "Back to `pending`, due now, with the same `webhook-id`; a disabled endpoint is enabled "
    "again.", {"202": ok("The delivery", ref(WebhookDelivery)),
               "404": error("No such delivery of this endpoint"),
               "409": error("`not_failed`: only a failed delivery is replayed")}, [DELIVERY_ID])
REPLAY_FAILED = {**_op(
    "replayFailedWebhookDeliveries", "Send every failed delivery since a time again",
    "Each failed delivery whose event is from `since` on, as a single replay does.",
    {"202": ok("How many", ref(Replayed)), **NOT_FOUND, **_BODY_ERRORS}), **_body(ReplayIn)}
