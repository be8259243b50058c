"""The receipt API's part of /openapi.json (OpenAPI 3.0.3): paths and their schemas.

Data only; `receiver.openapi` merges it with the other components'. The rules stated here are the
ones `sync.receipt_model` enforces; change both together.
"""

from __future__ import annotations

from typing import Any

from sync.receipt_fields import DECIMAL_PATTERN
from sync.states import ReceiptStatus, StepState

_REF = "#/components/schemas/"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF + name}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref("Error")}}}


_DECIMAL = {
    "oneOf": [
        {"type": "number", "minimum": 0, "exclusiveMinimum": True},
        {"type": "string", "pattern": DECIMAL_PATTERN},
    ]
}
_MONEY = {
    **_DECIMAL,
    "description": "Greater than zero, at most 2 decimals (trailing zeros aside), at most "
    "9999999999.99; a JSON number or a decimal string: ASCII digits with an optional decimal "
    "point, no sign, exponent or digit separator (read as a decimal, never as a float).",
}
_NULLABLE_TEXT = {"type": "string", "nullable": True}
_DECIMAL_TEXT = {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?$", "example": "118.00"}

SUPPLIER_IN = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 200,
                 "description": "Needs at least one letter or digit (a name of only symbols or "
                 "emoji is refused: it would match every other such name)."},
        "tax_id": {
            "type": "string", "nullable": True, "maxLength": 40, "example": "1-31-24679-6",
            "description": "RNC (9 digits) or cédula (11 digits); dashes and spaces allowed, check "
            "digit verified; read after NFKC (fullwidth digits are read as ASCII, other digit "
            "sets are refused). Optional: without it the supplier is matched on its normalised "
            "name.",
        },
        "email": {"type": "string", "nullable": True, "maxLength": 254, "format": "email"},
        "phone": {"type": "string", "nullable": True, "maxLength": 40},
    },
}
LINE_IN = {
    "type": "object",
    "required": ["description", "amount"],
    "properties": {
        "description": {"type": "string", "minLength": 1, "maxLength": 500},
        "amount": {**_MONEY, "description": "Unit price before ITBIS (Alegra's `price`). "
                   + str(_MONEY["description"])},
        "quantity": {**_DECIMAL, "description": "Default 1; greater than zero, up to 6 decimals."},
        "tax_rate": {
            "nullable": True, "enum": [0, 16, 18, "0", "16", "18", None],
            "description": "ITBIS percent: 18, 16, or 0 for an exempt line (a decimal string "
            "equal to one of them, such as \"18.00\", is read as it). Omitted or null: no tax "
            "on the line.",
        },
        "category": {
            "type": "string", "nullable": True, "maxLength": 150,
            "description": "Expense account for this line; overrides the receipt's `category`. "
            "Needs at least one letter or digit.",
        },
    },
}
ATTACHMENT_IN = {
    "type": "object",
    "required": ["filename", "content_type", "data_base64"],
    "properties": {
        "filename": {"type": "string", "minLength": 1, "maxLength": 255},
        "content_type": {
            "type": "string",
            "enum": ["image/jpeg", "image/png", "image/webp", "image/gif", "application/pdf"],
            "description": "Must match the bytes' own signature (else 415).",
        },
        "data_base64": {"type": "string", "format": "byte"},
    },
}
RECEIPT_IN = {
    "type": "object",
    "required": ["supplier", "date", "category", "lines"],
    "additionalProperties": True,
    "description": "A supplier's receipt. Unknown fields are accepted and ignored (they are not "
    "stored and do not count for idempotency). Field errors answer 422 naming the field's JSON "
    "path, e.g. `lines[2].amount`. Identifiers, numbers, dates and the currency are read after "
    "Unicode NFKC normalisation (so fullwidth `１` is `1`), and the patterns here apply to that "
    "form; a character still outside ASCII is refused. No text field may hold a lone surrogate, "
    "a control character (U+0000–U+001F, U+007F–U+009F, U+2028, U+2029), a bidi override or "
    "isolate (U+202A–U+202E, U+2066–U+2069), or only invisible characters.",
    "properties": {
        "supplier": _ref("SupplierIn"),
        "date": {"type": "string", "format": "date", "example": "2024-05-01"},
        "due_date": {"type": "string", "format": "date", "nullable": True,
                     "description": "On or after `date`; default `date`."},
        "ncf": {"type": "string", "nullable": True, "example": "B0100000001",
                "description": "NCF (B + 10 characters) or e-CF (E + 12); its type is kept."},
        "category": {"type": "string", "minLength": 1, "maxLength": 150,
                     "description": "Name of the expense account (created if missing); needs "
                     "at least one letter or digit."},
        "currency": {"type": "string", "pattern": "^[A-Za-z]{3}$", "default": "DOP"},
        "exchange_rate": {**_DECIMAL, "nullable": True,
                          "description": "DOP per unit of `currency`; required unless DOP."},
        "total": {**_MONEY, "nullable": True, "description": (
            "Optional check: must equal the sum over lines of amount × quantity plus its ITBIS, "
            "rounded once to the cent, half up; otherwise 422 `total_mismatch` with `expected` "
            "and `given`. That sum may not pass 9999999999.99 (422 on `total`).")},
        "lines": {"type": "array", "minItems": 1, "maxItems": 200, "items": _ref("LineIn")},
        "attachment": {"allOf": [_ref("AttachmentIn")], "nullable": True},
    },
}
STEP = {
    "type": "object",
    "properties": {
        "step": {"type": "string", "example": "account:Gastos de oficina",
                 "description": (
                     "duplicate_check, supplier, account:<name>, bill or attachment. "
                     "duplicate_check ends `found` with detail {reason, ncf, bill_id, "
                     "bill_status, known_from} when the supplier's NCF already has a live bill "
                     "({reason, ncf, bill_id: null, billed_by: another_partner} to a partner "
                     "key when another partner's receipt made it)."
                 )},
        "state": {"type": "string", "enum": [state.value for state in StepState]},
        "outcome": {"type": "string", "nullable": True,
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
        "tax_rate": {**_DECIMAL_TEXT, "nullable": True},
        "category": {"type": "string", "description": "The effective expense account."},
    },
}
RECEIPT = {
    "type": "object",
    "description": "A stored receipt and how far the worker got with it. Decimals are strings.",
    "properties": {
        "id": {"type": "string", "example": "rcp_0123456789abcdef01234567"},
        "status": {"type": "string", "enum": [status.value for status in ReceiptStatus]},
        "created_at": {"type": "string", "format": "date-time"},
        "updated_at": {"type": "string", "format": "date-time"},
        "completed_at": {"type": "string", "format": "date-time", "nullable": True},
        "idempotency_key": {"type": "string"},
        "supplier": {"type": "object", "properties": {
            "name": {"type": "string"},
            "tax_id": {**_NULLABLE_TEXT, "description": "Digits only."},
            "tax_id_kind": {"type": "string", "nullable": True, "enum": ["RNC", "CEDULA", None]},
        }},
        "date": {"type": "string", "format": "date"},
        "due_date": {"type": "string", "format": "date"},
        "ncf": _NULLABLE_TEXT,
        "ncf_type": {**_NULLABLE_TEXT, "example": "B01"},
        "category": {"type": "string"},
        "currency": {"type": "string"},
        "exchange_rate": {**_DECIMAL_TEXT, "nullable": True},
        "total": _DECIMAL_TEXT,
        "lines": {"type": "array", "items": _LINE_OUT},
        "attachment": {"type": "object", "nullable": True, "properties": {
            "filename": {"type": "string"}, "content_type": {"type": "string"},
            "size": {"type": "integer"},
        }},
        "attempts": {"type": "integer"},
        "next_attempt_at": {"type": "string", "format": "date-time", "nullable": True},
        "steps": {"type": "array", "items": _ref("ReceiptStep")},
        "alegra": {"type": "object", "properties": {
            "contact_id": _NULLABLE_TEXT,
            "account_ids": {"type": "object", "additionalProperties": {"type": "string"}},
            "bill_id": {**_NULLABLE_TEXT, "description": (
                "For `duplicate`: the existing bill; null to a partner key when another "
                "partner's receipt made it.")},
            "attachment": {"type": "object", "nullable": True, "additionalProperties": True},
        }},
        "error": {"type": "object", "nullable": True, "additionalProperties": True,
                  "description": (
                      "On failure: the step, Alegra's status, code and message. "
                      "`ncf_in_flight` / `ncf_held_by_failed_receipt` name the receipt holding "
                      "the NCF in `holder` (null to a partner key when it is another partner's)."
                  )},
        "flags": {"type": "array", "items": {}, "description": (
            "Notes: `likely_duplicate:<bill or receipt id>` (no NCF, same supplier, date and "
            "total as a known bill or receipt; still billed; `likely_duplicate` alone when it "
            "is another partner's), `bill_voided`, `bill_deleted` "
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
        "content": {"application/json": {"schema": _ref("Receipt")}},
    }


_PREFER = {
    "name": "Prefer", "in": "header", "required": False, "schema": {"type": "string"},
    "example": "wait=10",
    "description": "RFC 7240 `wait=N`: wait up to N seconds (at most 30) for a final status. "
    "The web process only re-reads the stored receipt; it never calls Alegra.",
}
_POST = {
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
        "application/json": {"schema": _ref("ReceiptIn")},
        "multipart/form-data": {
            "schema": {"type": "object", "required": ["receipt"], "properties": {
                "receipt": {"allOf": [_ref("ReceiptIn")],
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
        "400": _error("Malformed JSON or multipart body, or missing Idempotency-Key"),
        "401": _error("Missing, unknown or revoked partner key"),
        "413": _error("Request body or attachment over the size bound"),
        "415": _error("Body not JSON/multipart, or attachment type not accepted / not matching"),
        "422": _error("A field breaks a rule (`field` names it), `total_mismatch`, or "
                      "`idempotency_key_reused`"),
        "503": {**_error("`busy`: the receipt bodies being received pass "
                         "MAX_BODY_BYTES_IN_FLIGHT; nothing stored, send it again"),
                "headers": {"Retry-After": {"schema": {"type": "integer"},
                                            "description": "Seconds to wait"}}},
    },
}
_GET = {
    "operationId": "getReceipt",
    "summary": "A receipt's status, steps and Alegra ids",
    "security": [{"partnerKey": []}],
    "parameters": [
        {"name": "receipt_id", "in": "path", "required": True, "schema": {"type": "string"}},
        _PREFER,
    ],
    "responses": {
        "200": _resource("The receipt", _APPLIED),
        "401": _error("Missing, unknown or revoked partner key"),
        "404": _error("No such receipt for this partner"),
    },
}

OPENAPI_PATHS: dict[str, Any] = {
    "/v1/receipts": {"post": _POST},
    "/v1/receipts/{receipt_id}": {"get": _GET},
}
OPENAPI_SCHEMAS: dict[str, Any] = {
    "ReceiptIn": RECEIPT_IN,
    "SupplierIn": SUPPLIER_IN,
    "LineIn": LINE_IN,
    "AttachmentIn": ATTACHMENT_IN,
    "Receipt": RECEIPT,
    "ReceiptStep": STEP,
}
