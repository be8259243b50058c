"""The receipt API's operations in /openapi.json, and the receipt resource's schema.

The request body's schema is generated from `sync.receipt_contract` (the models that validate
it); `receiver.openapi` reads the paths off the routes in `receiver.receipts`.
"""

from __future__ import annotations

from typing import Any

from receiver.openapi import error, ref
from sync.receipt_contract import ReceiptIn

_NULLABLE_TEXT = {"type": ["string", "null"]}
_DECIMAL_TEXT = {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?$", "example": "118.00"}
_NULLABLE_DECIMAL_TEXT = {**_DECIMAL_TEXT, "type": ["string", "null"]}
_NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}

STEP = {
    "type": "object",
    "properties": {
        "step": {"type": "string", "example": "account:Gastos de oficina",
                 "description": (
                     "duplicate_check, supplier, account:<name>, bill or attachment. "
                     "duplicate_check ends `found` with detail {reason, ncf, bill_id, "
                     "bill_status, known_from} when the supplier's NCF already has a live bill."
                 )},
        "state": {"type": "string", "enum": ["pending", "attempting", "done", "failed"]},
        "outcome": {"type": ["string", "null"],
                    "description": "found, created, updated or skipped"},
        "alegra_id": _NULLABLE_TEXT,
        "detail": {"type": "object", "additionalProperties": True},
        "attempts": {"type": "integer"},
        "updated_at": {"type": "string", "format": "date-time"},
    },
}
_LINE_OUT = {
    "type": "object",
    "properties": {
        "description": {"type": "string"},
        "amount": _DECIMAL_TEXT,
        "quantity": _DECIMAL_TEXT,
        "tax_rate": _NULLABLE_DECIMAL_TEXT,
        "category": {"type": "string", "description": "The effective expense account."},
    },
}
RECEIPT = {
    "type": "object",
    "description": "A stored receipt and how far the worker got with it. Decimals are strings.",
    "properties": {
        "id": {"type": "string", "example": "rcp_0123456789abcdef01234567"},
        "status": {"type": "string",
                   "enum": ["queued", "processing", "completed", "failed", "duplicate"]},
        "created_at": {"type": "string", "format": "date-time"},
        "updated_at": {"type": "string", "format": "date-time"},
        "completed_at": _NULLABLE_TIME,
        "idempotency_key": {"type": "string"},
        "supplier": {"type": "object", "properties": {
            "name": {"type": "string"},
            "tax_id": {**_NULLABLE_TEXT, "description": "Digits only."},
            "tax_id_kind": {"type": ["string", "null"], "enum": ["RNC", "CEDULA", None]},
        }},
        "date": {"type": "string", "format": "date"},
        "due_date": {"type": "string", "format": "date"},
        "ncf": _NULLABLE_TEXT,
        "ncf_type": {**_NULLABLE_TEXT, "example": "B01"},
        "category": {"type": "string"},
        "currency": {"type": "string"},
        "exchange_rate": _NULLABLE_DECIMAL_TEXT,
        "total": _DECIMAL_TEXT,
        "lines": {"type": "array", "items": _LINE_OUT},
        "attachment": {"type": ["object", "null"], "properties": {
            "filename": {"type": "string"}, "content_type": {"type": "string"},
            "size": {"type": "integer"},
        }},
        "attempts": {"type": "integer"},
        "next_attempt_at": _NULLABLE_TIME,
        "steps": {"type": "array", "items": ref("ReceiptStep")},
        "alegra": {"type": "object", "properties": {
            "contact_id": _NULLABLE_TEXT,
            "account_ids": {"type": "object", "additionalProperties": {"type": "string"}},
            "bill_id": {**_NULLABLE_TEXT, "description": "For `duplicate`: the existing bill."},
            "attachment": {"type": ["object", "null"], "additionalProperties": True},
        }},
        "error": {"type": ["object", "null"], "additionalProperties": True,
                  "description": "On failure: the step, Alegra's status, code and message."},
        "flags": {"type": "array", "items": {}, "description": (
            "Notes: `likely_duplicate:<bill or receipt id>` (no NCF, same supplier, date and "
            "total as a known bill or receipt; still billed), `bill_voided`, `bill_deleted` "
            "(what Alegra later said of the bill)."
        )},
    },
}

_LOCATION = {"Location": {"schema": {"type": "string"}, "description": "/v1/receipts/{id}"}}
_APPLIED = {"Preference-Applied": {"schema": {"type": "string"}, "description": "wait=N"}}
_REPLAYED = {"Idempotent-Replayed": {"schema": {"type": "string", "enum": ["true"]}}}


def _resource(description: str, headers: dict[str, Any]) -> dict[str, Any]:
    return {
        "description": description,
        "headers": headers,
        "content": {"application/json": {"schema": ref("Receipt")}},
    }


_PREFER = {
    "name": "Prefer", "in": "header", "required": False, "schema": {"type": "string"},
    "example": "wait=10",
    "description": "RFC 7240 `wait=N`: wait up to N seconds (at most 30) for a final status. "
    "The web process only re-reads the stored receipt; it never calls Alegra.",
}
CREATE = {
    "operationId": "createReceipt",
    "summary": "Submit a supplier receipt to become a bill in Alegra",
    "description": "The receipt is stored before the answer. 202: accepted, the worker will bill "
    "it; 201: created and already final (with `Prefer: wait`). Replaying the same "
    "Idempotency-Key with the same receipt returns the same receipt (200 when final, else 202) "
    "and writes nothing; the same key with a different receipt is 422 `idempotency_key_reused`. "
    "Keys are scoped per partner. A refused request writes nothing.",
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
    },
}
READ = {
    "operationId": "getReceipt",
    "summary": "A receipt's status, steps and Alegra ids",
    "security": [{"partnerKey": []}],
    "parameters": [
        _PREFER,
    ],
    "responses": {
        "200": _resource("The receipt", _APPLIED),
        "401": error("Missing, unknown or revoked partner key"),
        "404": error("No such receipt for this partner"),
    },
}

OPENAPI_MODELS = (ReceiptIn,)
OPENAPI_SCHEMAS: dict[str, Any] = {"Receipt": RECEIPT, "ReceiptStep": STEP}
