"""POST /v1/receipts and GET /v1/receipts/{id}: the partner receipt API, web side.

A receipt is authenticated, validated (`sync.receipt_model`), committed with its attachment in one
transaction, and answered `202 Accepted`; the worker turns it into a bill later. Nothing here calls
Alegra: `Prefer: wait=N` (RFC 7240, N ≤ 30) only re-reads the receipt's row until its status is
final, then answers 201 (200 for a replay). Every refusal (400/401/404/413/415/422) writes no
row. A receipt is stored for the company `Alegra-Company` names (`receiver/company.py`); the
Idempotency-Key is scoped per partner and company.
The request body's contract is `sync.receipt_contract` (its schema is served at /openapi.json);
the operations are described in `receiver/receipts_spec.py`.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute

from receiver import receipts_spec as spec
from receiver.auth import Partner, authenticate
from receiver.body_budget import BoundedBody
from receiver.company import company_db, receipt_scope
from receiver.errors import ApiError
from receiver.multipart import FileNameNotUtf8, MalformedMultipart, Part, parse_form
from receiver.openapi import ApiRoute
from receiver.receipt_view import partner_resource
from sync.logs import get_logger
from sync.receipt_model import ReceiptInvalid, Submission, Upload, decode_json, parse_submission
from sync.states import FINAL_RECEIPT_STATUSES
from sync.store.db import Database
from sync.store.receipts import (
    IdempotencyConflict,
    get_receipt,
    get_status,
    get_steps,
    insert_receipt,
)

OPENAPI_MODELS = spec.OPENAPI_MODELS
MAX_WAIT_S = 30
POLL_FIRST_S = 0.05
POLL_MAX_S = 0.5
MAX_IDEMPOTENCY_KEY = 255
MULTIPART = "multipart/form-data"
MAX_PARTS = 10
_WAIT = re.compile(r"(?:^|[\s,;])wait\s*=\s*\"?(\d+)", re.IGNORECASE)
_VISIBLE = re.compile(r"[\x21-\x7e][\x20-\x7e]*")


def body_limit(max_attachment_bytes: int) -> int:
    """Largest request body read: the attachment in base64 (4/3, rounded up) plus the JSON."""
    return int(max_attachment_bytes * 1.4) + 64 * 1024


async def create_receipt(request: Request) -> JSONResponse:
    """POST /v1/receipts."""
    partner = await authenticate(request)
    key = idempotency_key(request.headers)
    db = await company_db(request, partner)
    submission = await read_submission(request)
    try:
        receipt_id, created = await insert_receipt(
            db, partner_id=partner.id, idempotency_key=key, submission=submission
        )
    except IdempotencyConflict as exc:
        raise ApiError(
            422, "idempotency_key_reused",
            "this Idempotency-Key was used for a different receipt; use a new key",
            field="Idempotency-Key", extra={"receipt_id": exc.receipt_id},
        ) from exc
    get_logger(receipt_id=receipt_id, partner=partner.name, company=db.company).info(
        "receipt.stored" if created else "receipt.replayed",
        attachment=submission.receipt.attachment is not None,
    )
    return await answer(db, receipt_id, request.headers, created=created, viewer=partner)


async def read_receipt(request: Request) -> JSONResponse:
    """GET /v1/receipts/{id}: the partner's own receipt in a company it is granted (any
    receipt for an admin key), whatever the company; `Alegra-Company`, if sent, must be it."""
    partner = await authenticate(request)
    receipt_id = request.path_params["receipt_id"]
    db = await receipt_scope(request, partner, receipt_id)
    if db is None or await _visible_row(db, receipt_id, partner) is None:
        raise ApiError(404, "not_found", "no such receipt")
    return await answer(db, receipt_id, request.headers, created=None, viewer=partner)


async def _visible_row(db: Database, receipt_id: str, partner: Partner) -> Any:
    return await get_receipt(db, receipt_id, None if partner.is_admin else partner.id)


async def answer(
    db: Database, receipt_id: str, headers: Headers, *, created: bool | None, viewer: Partner
) -> JSONResponse:
    """The receipt resource as `viewer` may read it (`receipt_view.py`), after waiting if
    `Prefer: wait=N` asks. `created` is None for a GET: 200. For a POST: 201 if it was created
    and is final, 200 for a final replay, else 202."""
    wait = preferred_wait(headers)
    if wait:
        await wait_until_final(db, receipt_id, wait)
    row = await get_receipt(db, receipt_id, None)
    assert row is not None  # receipts are never deleted
    resource = await partner_resource(db, row, await get_steps(db, receipt_id),
                                      viewer=None if viewer.is_admin else viewer.id)
    final = resource["status"] in FINAL_RECEIPT_STATUSES
    status = 200 if created is None or (final and not created) else 201 if final else 202
    out = {"Location": f"/v1/receipts/{receipt_id}"}
    if wait is not None:
        out["Preference-Applied"] = f"wait={wait}"
    if created is False:
        out["Idempotent-Replayed"] = "true"
    return JSONResponse(resource, status_code=status, headers=out)


def preferred_wait(headers: Headers) -> int | None:
    """Seconds from `Prefer: wait=N` (RFC 7240), clamped to MAX_WAIT_S; None when not asked."""
    match = _WAIT.search(", ".join(headers.getlist("prefer")))
    if match is None:
        return None
    digits = match.group(1)
    return MAX_WAIT_S if len(digits) > 6 else min(int(digits), MAX_WAIT_S)


async def wait_until_final(db: Database, receipt_id: str, seconds: float) -> None:
    """Re-read the receipt's status until final or `seconds` pass. Holds no transaction."""
    deadline = time.monotonic() + seconds
    pause = POLL_FIRST_S
    while await get_status(db, receipt_id) not in FINAL_RECEIPT_STATUSES:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        await asyncio.sleep(min(pause, remaining))
        pause = min(pause * 2, POLL_MAX_S)


def idempotency_key(headers: Headers) -> str:
    """The required `Idempotency-Key`: 1–255 visible ASCII characters. Raises ApiError 400."""
    key = headers.get("idempotency-key", "").strip()
    if not key:
        raise ApiError(400, "missing_idempotency_key", "the Idempotency-Key header is required",
                       field="Idempotency-Key")
    if len(key) > MAX_IDEMPOTENCY_KEY or not _VISIBLE.fullmatch(key):
        raise ApiError(400, "invalid_idempotency_key",
                       f"Idempotency-Key: 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters",
                       field="Idempotency-Key")
    return key


async def read_submission(request: Request) -> Submission:
    """Read (bounded), decode and validate the body. Raises ApiError 400/413/415/422."""
    max_bytes = request.app.state.settings.max_attachment_bytes
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != MULTIPART and not (media == "application/json" or media.endswith("+json")):
        raise ApiError(415, "unsupported_media_type",
                       "send the receipt as application/json or multipart/form-data")
    body = await read_bounded(request, body_limit(max_bytes))
    try:
        if media == MULTIPART:
            data, upload = parse_multipart(request.headers, body)
        else:
            data, upload = decode_json(body), None
        return parse_submission(data, max_attachment_bytes=max_bytes, upload=upload)
    except ReceiptInvalid as exc:
        raise ApiError(exc.status, exc.code, exc.message, field=exc.field, extra=exc.extra) from exc


async def read_bounded(request: Request, limit: int) -> bytes:
    """The body, refusing with 413 as soon as it (or its Content-Length) passes `limit`."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _body_too_large(limit)
    received = bytearray()
    async for chunk in request.stream():
        received += chunk
        if len(received) > limit:
            raise _body_too_large(limit)
    return bytes(received)


def _body_too_large(limit: int) -> ApiError:
    return ApiError(413, "too_large", f"the request body is larger than {limit} bytes")


def parse_multipart(headers: Headers, body: bytes) -> tuple[object, Upload | None]:
    """The `receipt` part (JSON, UTF-8) and the optional `file` part; other parts are ignored.
    Raises ApiError 400 (`malformed_multipart`) or ReceiptInvalid."""
    try:
        parts = parse_form(headers.get("content-type", ""), body, max_parts=MAX_PARTS)
    except MalformedMultipart as exc:
        raise ApiError(400, "malformed_multipart", str(exc)) from exc
    except FileNameNotUtf8 as exc:
        raise ReceiptInvalid(exc.part_name, "the file name is not UTF-8") from exc
    return _receipt_part(parts), _file_part(parts)


def _receipt_part(parts: list[Part]) -> object:
    receipt = [part for part in parts if part.name == "receipt"]
    if not receipt:
        raise ReceiptInvalid("receipt", "required: the receipt as a JSON part named receipt")
    if len(receipt) > 1:
        raise ReceiptInvalid("receipt", "one part named receipt")
    return decode_json(receipt[0].data, "receipt")


def _file_part(parts: list[Part]) -> Upload | None:
    files = [part for part in parts if part.name == "file"]
    if not files:
        return None
    if len(files) > 1 or files[0].filename is None:
        raise ReceiptInvalid("file", "one file part named file, sent as a file")
    part = files[0]
    return Upload(part.filename, part.content_type, part.data)


routes: list[BaseRoute] = [
    ApiRoute("/v1/receipts", create_receipt, "POST", spec.CREATE,
             middleware=[Middleware(BoundedBody)]),
    ApiRoute("/v1/receipts/{receipt_id}", read_receipt, "GET", spec.READ),
]
