"""The operators' repairs: inbox events (list, replay) and every partner's receipts (list, retry);
and the companies served (add, list, read, remove).

Admin keys only. A replay or a retry only hands the row back to the worker, which does the work
through the same idempotent paths as the first attempt: applying an event fetches the record's
current state from Alegra, and a receipt resumes from its recorded steps (a step already `done`
is never repeated), so neither can create a second contact, account or bill. A company added
here has its token encrypted under CREDENTIALS_KEY (`sync.credentials`) before it is stored; no
answer carries a token.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute

from receiver import admin_spec as spec
from receiver import query
from receiver.auth import require_admin
from receiver.company import company_db, receipt_scope
from receiver.errors import ApiError
from receiver.json_body import read_model
from receiver.openapi import ApiRoute
from sync import credentials
from sync.company_contract import CompanyIn
from sync.inbox_records import InboxEvent
from sync.logs import get_logger
from sync.receipt_records import ReceiptRecord
from sync.receipt_resource import receipt_resource
from sync.settings import Settings, SettingsError
from sync.states import InboxState, ReceiptStatus
from sync.store import companies, ops_queries
from sync.store.companies import CompanyExists, CompanyNotFound, CompanyRecord, DefaultCompany
from sync.store.db import Database
from sync.store.inbox import get_row
from sync.store.receipts import get_receipt, get_steps, list_receipts
from sync.webhook_tokens import all_tokens

OPENAPI_SCHEMAS = spec.OPENAPI_SCHEMAS
OPENAPI_MODELS = spec.OPENAPI_MODELS

EVENT_STATES = tuple(state.value for state in InboxState)
RECEIPT_STATUSES = tuple(status.value for status in ReceiptStatus)
MAX_BODY_TEXT = 4096
MAX_ROW_ID = 2**63 - 1
MAX_COMPANY_BODY = 16 * 1024


def event_view(row: InboxEvent, tokens: list[str]) -> dict[str, Any]:
    """An inbox row with its body parsed; any webhook URL token in it is masked."""
    text = row.body.decode("utf-8", errors="replace")
    for token in tokens:
        text = text.replace(token, "***")
    body, body_text = _body_fields(text)
    return {
        "id": row.id, "received_at": row.received_at, "subject": row.subject,
        "resource": row.resource, "resource_id": row.resource_id, "shape": row.shape,
        "state": row.state, "attempts": row.attempts,
        "next_attempt_at": row.next_attempt_at, "last_error": row.last_error,
        "applied_at": row.applied_at, "body": body, "body_text": body_text,
    }


def _body_fields(text: str) -> tuple[Any, str | None]:
    """(body, body_text): the body parsed if it can be answered as JSON again, else shown as
    text: not JSON, nested deeper than the parser goes (100,000 brackets), a lone surrogate
    (`"\\ud83d"`, which has no UTF-8 form), or NaN and numbers past a float (`1e999`), which
    the answer's strict JSON refuses."""
    try:
        body = json.loads(text)
        json.dumps(body, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except (ValueError, RecursionError, UnicodeEncodeError):
        return None, text[:MAX_BODY_TEXT]
    return body, None


def _event_id(request: Request) -> int:
    raw = request.path_params["event_id"]
    if not raw.isdigit() or int(raw) > MAX_ROW_ID:
        raise ApiError(404, "not_found", "no inbox event with this id")
    return int(raw)


async def list_events(request: Request) -> JSONResponse:
    """GET /v1/events: inbox rows, newest first, filtered, cursor-paged."""
    db = await company_db(request, await require_admin(request))
    params = request.query_params
    limit = query.limit(params)
    after = query.cursor(params, (int,))
    rows = await ops_queries.events_page(
        db,
        state=query.choice(params, "state", EVENT_STATES),
        subject=query.text(params, "subject"),
        resource=query.text(params, "resource"),
        resource_id=query.text(params, "resource_id"),
        before_id=after[0] if after else None,
        limit=limit + 1,
    )
    page = rows[:limit]
    tokens = all_tokens(request.app.state.settings.secret_keys, company=db.company)
    next_cursor = query.encode_cursor([page[-1].id]) if len(rows) > limit else None
    return JSONResponse({"data": [event_view(r, tokens) for r in page], "next_cursor": next_cursor})


async def replay_event(request: Request) -> JSONResponse:
    """POST /v1/events/{event_id}/replay: back to `received`; the worker applies it again."""
    admin = await require_admin(request)
    event_id = _event_id(request)
    db = await company_db(request, admin)
    if not await ops_queries.replay_event(db, event_id):
        raise ApiError(404, "not_found", "no inbox event with this id")
    get_logger(event_id=event_id, admin=admin.name).info("event.replay_requested")
    row = await get_row(db, event_id)
    assert row is not None  # a replayed row is `received`, which retention never deletes
    tokens = all_tokens(request.app.state.settings.secret_keys, company=db.company)
    return JSONResponse(event_view(row, tokens))


async def _receipt_view(db: Database, receipt: ReceiptRecord) -> dict[str, Any]:
    steps = await get_steps(db, receipt.id)
    return {**receipt_resource(receipt, steps), "partner_id": receipt.partner_id}


async def list_all_receipts(request: Request) -> JSONResponse:
    """GET /v1/receipts: every partner's receipts, newest first, filtered, cursor-paged."""
    db = await company_db(request, await require_admin(request))
    params = request.query_params
    partner = query.text(params, "partner")
    partner_id = await ops_queries.partner_id_for(db, partner) if partner else None
    if partner and partner_id is None:
        raise query.invalid("partner", "partner: no partner with this name or id")
    limit = query.limit(params)
    rows = await list_receipts(
        db, partner_id=partner_id, status=query.choice(params, "status", RECEIPT_STATUSES),
        date_from=query.day(params, "date_from"), date_to=query.day(params, "date_to"),
        limit=limit + 1, after=query.cursor(params, (str, str)),
    )
    page = rows[:limit]
    next_cursor = (
        query.encode_cursor([page[-1].created_at, page[-1].id])
        if len(rows) > limit else None
    )
    data = [await _receipt_view(db, row) for row in page]
    return JSONResponse({"data": data, "next_cursor": next_cursor})


async def retry_receipt(request: Request) -> JSONResponse:
    """POST /v1/receipts/{receipt_id}/retry: a failed receipt back to `queued`, due now."""
    admin = await require_admin(request)
    receipt_id = request.path_params["receipt_id"]
    db = await receipt_scope(request, admin, receipt_id)
    if db is None:
        raise ApiError(404, "not_found", "no such receipt")
    if not await ops_queries.retry_failed_receipt(db, receipt_id):
        row = await get_receipt(db, receipt_id, None)
        if row is None:
            raise ApiError(404, "not_found", "no such receipt")
        raise ApiError(409, "not_failed",
                       f"only a failed receipt can be retried; this one is {row.status}",
                       extra={"status": row.status.value})
    get_logger(receipt_id=receipt_id, admin=admin.name).info("receipt.retry_requested")
    row = await get_receipt(db, receipt_id, None)
    assert row is not None  # receipts are never deleted
    return JSONResponse(await _receipt_view(db, row), status_code=202,
                        headers={"Location": f"/v1/receipts/{receipt_id}"})


def company_view(record: CompanyRecord, settings: Settings) -> dict[str, Any]:
    """A company as the API shows it (`admin_spec.Company`): never its token."""
    return {
        "id": record.id, "name": record.name,
        "email": settings.alegra_email if record.is_default else record.email,
        "base_url": record.base_url, "state": record.state.value,
        "state_reason": record.state_reason, "created_at": record.created_at,
    }


async def create_company(request: Request) -> JSONResponse:
    """POST /v1/companies: store a company, its token encrypted; 201 with it (no token)."""
    admin = await require_admin(request)
    company = await _company_body(request)
    settings: Settings = request.app.state.settings
    try:
        sealed = credentials.encrypt(settings, company.token)
    except SettingsError as exc:
        raise ApiError(503, "credentials_key_missing", "CREDENTIALS_KEY is not set on this "
                       "deployment: a company's token cannot be stored") from exc
    try:
        record = await companies.add_company(
            request.app.state.db, company.name, company.email, sealed, company.base_url)
    except CompanyExists as exc:
        raise ApiError(409, "company_exists", str(exc), field="name") from exc
    get_logger(company=record.id, admin=admin.name).info("company.added")
    return JSONResponse(company_view(record, settings), status_code=201,
                        headers={"Location": f"/v1/companies/{record.id}"})


async def _company_body(request: Request) -> CompanyIn:
    """The JSON body as a CompanyIn. Raises ApiError 400/413/415/422 (nothing stored)."""
    return await read_model(request, CompanyIn, max_bytes=MAX_COMPANY_BODY, noun="the company")


async def list_companies(request: Request) -> JSONResponse:
    """GET /v1/companies: every company by id, removed ones too, cursor-paged."""
    await require_admin(request)
    params = request.query_params
    limit = query.limit(params)
    after = query.cursor(params, (str,))
    rows = await companies.list_companies(
        request.app.state.db, after=after[0] if after else None, limit=limit + 1)
    page = rows[:limit]
    next_cursor = query.encode_cursor([page[-1].id]) if len(rows) > limit else None
    settings = request.app.state.settings
    return JSONResponse({"data": [company_view(r, settings) for r in page],
                         "next_cursor": next_cursor})


async def read_company(request: Request) -> JSONResponse:
    """GET /v1/companies/{company_id}."""
    await require_admin(request)
    record = await companies.get_company(request.app.state.db, request.path_params["company_id"])
    if record is None:
        raise ApiError(404, "not_found", "no company with this id")
    return JSONResponse(company_view(record, request.app.state.settings))


async def remove_company(request: Request) -> JSONResponse:
    """DELETE /v1/companies/{company_id}: state `removed` (its rows stay)."""
    admin = await require_admin(request)
    company_id = request.path_params["company_id"]
    try:
        record = await companies.remove_company(request.app.state.db, company_id)
    except CompanyNotFound as exc:
        raise ApiError(404, "not_found", "no company with this id") from exc
    except DefaultCompany as exc:
        raise ApiError(409, "default_company", str(exc)) from exc
    get_logger(company=record.id, admin=admin.name).info("company.removed")
    return JSONResponse(company_view(record, request.app.state.settings))


routes: list[BaseRoute] = [
    ApiRoute("/v1/events", list_events, "GET", spec.LIST_EVENTS),
    ApiRoute("/v1/events/{event_id}/replay", replay_event, "POST", spec.REPLAY_EVENT),
    ApiRoute("/v1/receipts", list_all_receipts, "GET", spec.LIST_RECEIPTS),
    ApiRoute("/v1/receipts/{receipt_id}/retry", retry_receipt, "POST", spec.RETRY_RECEIPT),
    ApiRoute("/v1/companies", create_company, "POST", spec.CREATE_COMPANY),
    ApiRoute("/v1/companies", list_companies, "GET", spec.LIST_COMPANIES),
    ApiRoute("/v1/companies/{company_id}", read_company, "GET", spec.GET_COMPANY),
    ApiRoute("/v1/companies/{company_id}", remove_company, "DELETE", spec.DELETE_COMPANY),
]
