"""The operators' repairs, health and metrics in /openapi.json: /v1/events, the admin side of
/v1/receipts, /v1/companies, /healthz, /readyz and /metrics.

Data only; the routes that serve them carry them (`receiver.openapi.ApiRoute`): the list and
repair operations `receiver.admin`'s, `HEALTHZ` and `READYZ` `receiver.ops`', `METRICS`
`receiver.prometheus`'.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, Field

from receiver.company import MALFORMED, RECEIPT_PARAMETER, per_company
from receiver.inspect_spec import (
    ADMIN_ONLY,
    AUTH_ERRORS,
    BAD_QUERY,
    CURSOR,
    LIMIT,
    error,
    ok,
    page_of,
    param,
    ref,
)
from sync.company_contract import COMPANY_ID_PATTERN, CompanyIn
from sync.states import CompanyState, InboxState, ReceiptStatus

_TEXT = {"type": ["string", "null"]}
_NULL_TIME = {"type": ["string", "null"], "format": "date-time"}
_STATES = [state.value for state in InboxState]

EVENT = {"type": "object", "properties": {
    "id": {"type": "integer"},
    "received_at": {"type": "string", "format": "date-time"},
    "subject": {**_TEXT, "example": "edit-client"},
    "resource": {**_TEXT, "example": "client"},
    "resource_id": _TEXT,
    "shape": {"type": "string", "enum": ["ok", "malformed", "unknown"]},
    "state": {"type": "string", "enum": _STATES},
    "attempts": {"type": "integer"},
    "next_attempt_at": _NULL_TIME,
    "last_error": _TEXT,
    "applied_at": _NULL_TIME,
    "body": {"description": "The delivery's JSON body, parsed (any webhook "
             "URL token in it is masked); null when it is not JSON, or is JSON that has no JSON "
             "answer (nested too deep, a lone surrogate, NaN)."},
    "body_text": {**_TEXT, "description": "The body as text (first 4096 characters) when "
                  "`body` is null for one of those reasons."},
}}
ADMIN_RECEIPT = {"allOf": [ref("Receipt"), {"type": "object", "properties": {
    "partner_id": {"type": "string", "description": "The partner that submitted it."}}}]}
_ID = {"in": "path", "required": True}
_LOCATION = {"Location": {"schema": {"type": "string"}, "description": "/v1/receipts/{id}"}}


def _op(op_id: str, summary: str, description: str, parameters: list[dict[str, Any]],
        responses: dict[str, Any], *, by_id: bool = False) -> dict[str, Any]:
    """An admin operation on one company's rows (`Alegra-Company`); `by_id`: a receipt found
    by its id in whichever company holds it."""
    operation = {"operationId": op_id, "summary": summary, "description": description,
                 **ADMIN_ONLY, "parameters": parameters,
                 "responses": {**responses, **AUTH_ERRORS}}
    if by_id:
        return per_company(operation, RECEIPT_PARAMETER, MALFORMED)
    return per_company(operation)


LIST_EVENTS = _op(
    "listEvents", "Webhook deliveries in the inbox, newest first", "", [
        param("state", "Inbox state.", {"type": "string", "enum": _STATES}),
        param("subject", "Event type, e.g. `edit-client`."),
        param("resource", "client, bill, item or invoice."),
        param("resource_id", "The Alegra id the delivery is about."),
        LIMIT, CURSOR,
    ], {"200": ok("A page of inbox rows", page_of("InboxEvent")), **BAD_QUERY})
REPLAY_EVENT = _op(
    "replayEvent", "Apply an inbox row again",
    "Sets the row back to `received` (attempts are kept); the worker applies it again. "
    "Applying fetches the record's current state from Alegra, so a replay is idempotent.",
    [{"name": "event_id", **_ID, "schema": {"type": "integer", "minimum": 1}}],
    {"200": ok("The row, now waiting to be applied", ref("InboxEvent")),
     "404": error("No such inbox row")})
LIST_RECEIPTS = _op(
    "listReceipts", "Every partner's receipts, newest first (admin)", "", [
        param("status", "Receipt status.", {"type": "string", "enum": [
            status.value for status in ReceiptStatus]}),
        param("partner", "The partner's id or name (an unknown one is a 400)."),
        param("date_from", "The receipt's own date, from (inclusive).",
              {"type": "string", "format": "date"}),
        param("date_to", "The receipt's own date, to (inclusive).",
              {"type": "string", "format": "date"}),
        LIMIT, CURSOR,
    ], {"200": ok("A page of receipts", page_of("AdminReceipt")), **BAD_QUERY})
RETRY_RECEIPT = _op(
    "retryReceipt", "Run a failed receipt's flow again",
    "A `failed` receipt goes back to `queued`, due now. The flow resumes from its recorded "
    "steps: a contact, account or bill already made is never made twice.",
    [],
    {"202": {**ok("The receipt, queued again", ref("AdminReceipt")), "headers": _LOCATION},
     "404": error("No such receipt"),
     "409": error("The receipt is not `failed` (`status` says what it is)")}, by_id=True)
OPENAPI_SCHEMAS: dict[str, Any] = {"InboxEvent": EVENT, "AdminReceipt": ADMIN_RECEIPT}


class Company(BaseModel):
    """A company: one Alegra account. Never its token."""

    id: str = Field(pattern=COMPANY_ID_PATTERN, examples=["ferreteria-ochoa"], description=(
        "A slug of the name; `default` is the account configured in the environment."))
    name: str
    email: str | None = Field(description=(
        "The Alegra user's e-mail; for `default`, ALEGRA_EMAIL (null: the simulator)."))
    base_url: str | None = Field(description="null: the deployment's ALEGRA_BASE_URL.")
    state: CompanyState = Field(description=(
        "`needs_attention`: Alegra refused its credentials (`state_reason` says how); its work "
        "waits. `removed`: its work stopped; its receipts stay readable."))
    state_reason: str | None
    created_at: dt.datetime


OPENAPI_MODELS = (CompanyIn, Company)
_COMPANY_LOCATION = {"Location": {"schema": {"type": "string"},
                                  "description": "/v1/companies/{id}"}}
CREATE_COMPANY = {**_op(
    "createCompany", "Add a company (one Alegra account)",
    "Its id is a slug of `name`. The token is stored encrypted under CREDENTIALS_KEY and is "
    "never in an answer. A refused request stores nothing. Check the credentials with "
    "`alegra-sync companies check ID`.", [],
    {"201": {**ok("The company (never its token)", ref(Company)), "headers": _COMPANY_LOCATION},
     "400": error("Malformed JSON"),
     "409": error("`company_exists`: the name's id is taken (`field`: name)"),
     "413": error("Body over 16 KiB"),
     "415": error("Body not application/json"),
     "422": error("A field breaks a rule (`field` names it)"),
     "503": error("`credentials_key_missing`: CREDENTIALS_KEY is not set on the deployment")}),
    "requestBody": {"required": True, "content": {"application/json": {"schema": ref(CompanyIn)}}},
}
LIST_COMPANIES = _op(
    "listCompanies", "Every company, by id (removed ones too)", "", [LIMIT, CURSOR],
    {"200": ok("A page of companies", page_of("Company")), **BAD_QUERY})
GET_COMPANY = _op("getCompany", "One company", "", [],
                  {"200": ok("The company", ref(Company)), "404": error("No such company")})
DELETE_COMPANY = _op(
    "deleteCompany", "Remove a company",
    "Its state becomes `removed`: the worker stops its work; its rows stay (its receipts stay "
    "readable). The web process never calls Alegra: `alegra-sync companies remove ID` also "
    "removes its webhook subscriptions there (`--purge`: and deletes its rows).", [],
    {"200": ok("The company, now removed", ref(Company)), "404": error("No such company"),
     "409": error("`default_company`: the environment's account cannot be removed")})

_READY = {"type": "object", "required": ["status", "reasons"], "properties": {
    "status": {"type": "string", "enum": ["ready", "not_ready"]},
    "reasons": {"type": "array", "items": {"type": "string"}},
    "checks": {"type": "object", "additionalProperties": True},
}}
HEALTHZ: dict[str, Any] = {
    "operationId": "healthz", "summary": "The process is alive", "security": [],
    "responses": {"200": ok("Alive", {"type": "object", "properties": {
        "status": {"type": "string", "enum": ["ok"]}}})}}
READYZ: dict[str, Any] = {
    "operationId": "readyz", "summary": "Ready for traffic", "security": [],
    "description": "Ready when the database answers, every migration is applied and the "
    "worker's heartbeat is at most 30 s old.",
    "responses": {"200": ok("Ready", _READY), "503": ok("Not ready, with the reasons", _READY)}}
METRICS: dict[str, Any] = {
    "operationId": "metrics", "summary": "Prometheus metrics", "security": [],
    "description": "Text format 0.0.4. No key: counts, ages and bounded labels only (each "
    "company's series carry its id as `company`), never a receipt or Alegra id, a partner or "
    "contact name, a key or a token.",
    "responses": {"200": {"description": "The metrics", "content": {
        "text/plain": {"schema": {"type": "string"}}}}}}
