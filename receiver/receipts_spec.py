"""The receipt API's operations in /openapi.json, and the receipt resource they answer.

The request body is `sync.receipt_contract`'s models; the answer is described by the models here
(documentation of what `sync.receipt_resource.receipt_resource` builds: the fuzz test checks every
answer against them). `receiver.openapi` reads the paths off the routes in `receiver.receipts`.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from receiver.company import MALFORMED, RECEIPT_PARAMETER, per_company
from receiver.openapi import error, ref
from sync.receipt_contract import ReceiptIn
from sync.states import ReceiptStatus, StepState

DecimalText = Annotated[str, Field(pattern=r"^[0-9]+(\.[0-9]+)?$", examples=["118.00"])]


class ReceiptStep(BaseModel):
    step: str = Field(examples=["account:Gastos de oficina"], description=(
        "duplicate_check, supplier, account:<name>, bill or attachment. duplicate_check ends "
        "`found` with detail {reason, ncf, bill_id, bill_status, known_from} when the "
        "supplier's NCF already has a live bill ({reason, ncf, bill_id: null, billed_by: "
        "another_partner} to a partner key when another partner's receipt made it)."))
    state: StepState
    outcome: str | None = Field(description="found, created, updated or skipped")
    alegra_id: str | None
    detail: dict[str, Any]
    attempts: int
    updated_at: dt.datetime


class ReceiptSupplier(BaseModel):
    name: str
    tax_id: str | None = Field(description="Digits only.")
    tax_id_kind: Literal["RNC", "CEDULA"] | None


class ReceiptLine(BaseModel):
    description: str
    amount: DecimalText
    quantity: DecimalText
    tax_rate: DecimalText | None
    category: str = Field(description="The effective expense account.")


class ReceiptAttachment(BaseModel):
    filename: str
    content_type: str
    size: int


class AlegraIds(BaseModel):
    contact_id: str | None
    account_ids: dict[str, str]
    bill_id: str | None = Field(description=(
        "For `duplicate`: the existing bill; null to a partner key when another partner's "
        "receipt made it."))
    attachment: dict[str, Any] | None


class Receipt(BaseModel):
    """A stored receipt and how far the worker got with it. Decimals are strings."""

    id: str = Field(examples=["rcp_0123456789abcdef01234567"])
    status: ReceiptStatus
    created_at: dt.datetime
    updated_at: dt.datetime
    completed_at: dt.datetime | None
    idempotency_key: str
    supplier: ReceiptSupplier
    date: dt.date
    due_date: dt.date
    ncf: str | None
    ncf_type: str | None = Field(examples=["B01"])
    category: str
    currency: str
    exchange_rate: DecimalText | None
    total: DecimalText
    lines: list[ReceiptLine]
    attachment: ReceiptAttachment | None
    attempts: int
    next_attempt_at: dt.datetime | None
    steps: list[ReceiptStep]
    alegra: AlegraIds
    error: dict[str, Any] | None = Field(description=(
        "On failure: the step, Alegra's status, code and message. `ncf_in_flight` / "
        "`ncf_held_by_failed_receipt` name the receipt holding the NCF in `holder` (null to a "
        "partner key when it is another partner's)."))
    flags: list[Any] = Field(description=(
        "Notes: `likely_duplicate:<bill or receipt id>` (no NCF, same supplier, date and total "
        "as a known bill or receipt; still billed; `likely_duplicate` alone when it is another "
        "partner's), `bill_voided`, `bill_deleted` (what Alegra "
        "later said of the bill)."))


_LOCATION = {"Location": {"schema": {"type": "string"}, "description": "/v1/receipts/{id}"}}
_APPLIED = {"Preference-Applied": {"schema": {"type": "string"}, "description": "wait=N"}}
_REPLAYED = {"Idempotent-Replayed": {"schema": {"type": "string", "enum": ["true"]}}}


def _resource(description: str, headers: dict[str, Any]) -> dict[str, Any]:
    return {
        "description": description,
        "headers": headers,
        "content": {"application/json": {"schema": ref(Receipt)}},
    }


_PREFER = {
    "name": "Prefer", "in": "header", "required": False, "schema": {"type": "string"},
    "example": "wait=10",
    "description": "RFC 7240 `wait=N`: wait up to N seconds (at most 30) for a final status. "
    "The web process only re-reads the stored receipt; it never calls Alegra.",
}
CREATE = per_company({
    "operationId": "createReceipt",
    "summary": "Submit a supplier receipt to become a bill in Alegra",
    "description": "The receipt is stored before the answer. 202: accepted, the worker will bill "
    "it; 201: created and already final (with `Prefer: wait`). Replaying the same "
    "Idempotency-Key with the same receipt returns the same receipt (200 when final, else 202) "
    "and writes nothing; the same key with a different receipt is 422 `idempotency_key_reused`. "
    "Keys are scoped per partner and company. A refused request writes nothing.",
    "security": [{"partnerKey": []}],
    "parameters": [
        {"name": "Idempotency-Key", "in": "header", "required": True,
         "schema": {"type": "string", "minLength": 1, "maxLength": 255}},
        _PREFER,
    ],
    "requestBody": {"required": True, "content": {
        "application/json": {"schema": ref(ReceiptIn)},
        "multipart/form-data": {
            "schema": {"type": "object", "required": ["receipt"], "properties": {
                "receipt": {**ref(ReceiptIn),
                            "description": "The receipt JSON, without `attachment`."},
                "file": {"type": "string", "format": "binary",
                         "description": "The attachment (JPEG, PNG, WebP, GIF or PDF)."},
            }},
            "encoding": {"receipt": {"contentType": "application/json"}},
        },
    }},
    "responses": {
        "200": _resource("A replay of a receipt that is final", {**_LOCATION, **_REPLAYED}),
        "201": _resource("Stored and already final (`Prefer: wait`)", {**_LOCATION, **_APPLIED}),
        "202": _resource("Stored; the worker will bill it", {**_LOCATION, **_APPLIED}),
        "400": error("Malformed JSON or multipart body, or missing Idempotency-Key"),
        "401": error("Missing, unknown or revoked partner key"),
        "413": error("Request body or attachment over the size bound"),
        "415": error("Body not JSON/multipart, or attachment type not accepted / not matching"),
        "422": error("A field breaks a rule (`field` names it), `total_mismatch`, or "
                      "`idempotency_key_reused`"),
        "503": {**error("`busy`: the receipt bodies being received pass "
                        "MAX_BODY_BYTES_IN_FLIGHT; nothing stored, send it again. "
                        "`database_unavailable`: the database cannot be reached; it may not be "
                        "stored: send it again with the same Idempotency-Key"),
                "headers": {"Retry-After": {"schema": {"type": "integer"},
                                            "description": "Seconds to wait"}}},
    },
})
READ = per_company({
    "operationId": "getReceipt",
    "summary": "A receipt's status, steps and Alegra ids",
    "security": [{"partnerKey": []}],
    "parameters": [
        _PREFER,
    ],
    "responses": {
        "200": _resource("The receipt", _APPLIED),
        "401": error("Missing, unknown or revoked partner key"),
        "404": error("No such receipt for this partner, or in a company it is not granted"),
    },
}, RECEIPT_PARAMETER, MALFORMED)

OPENAPI_MODELS = (ReceiptIn, Receipt)
