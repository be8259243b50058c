"""The cache inspection API's part of /openapi.json: /v1/cache/* and their schemas.

Data only; the routes of `receiver.inspect` carry these operations (`receiver.openapi.ApiRoute`).
The rules stated here are the ones `receiver.inspect` and `sync.status` enforce; change both
together.
"""

from __future__ import annotations

from typing import Any

from receiver.company import MALFORMED, per_company
from receiver.openapi import error, ok, ref
from sync import status
from sync.states import JobOutcome

__all__ = ["error", "ok", "ref"]  # the admin spec's helpers too

_TEXT = {"type": ["string", "null"]}
_TIME = {"type": "string", "format": "date-time"}
_NULL_TIME = {**_TIME, "type": ["string", "null"]}
_NULL_NUMBER = {"type": ["number", "null"]}
_COUNTS = {"type": "object", "additionalProperties": {"type": "integer"}}


def page_of(item: str) -> dict[str, Any]:
    return {"type": "object", "required": ["data", "next_cursor"], "properties": {
        "data": {"type": "array", "items": ref(item)},
        "next_cursor": {**_TEXT, "description": "Pass as `cursor` for the next page; null on "
                        "the last page."},
    }}


def param(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema or {"type": "string", "maxLength": 200}}


ADMIN_ONLY = {
    "security": [{"partnerKey": []}],
    "x-admin-only": True,
}
AUTH_ERRORS = {
    "401": error("Missing, unknown or revoked key"),
    "403": error("A partner key: this endpoint needs an admin key (`partners add NAME --admin`)"),
}
BAD_QUERY = {"400": error("A query parameter is malformed (`field` names it)")}
LIMIT = param("limit", "Rows per page (default 50).",
              {"type": "integer", "minimum": 1, "maximum": 200, "default": 50})
CURSOR = param("cursor", "The `next_cursor` of the previous page (opaque).",
               {"type": "string", "maxLength": 1000})
INCLUDE_DELETED = param("include_deleted", "Also rows deleted in Alegra (soft-deleted here).",
                        {"type": "boolean", "default": False})

PROVENANCE = {
    "source": {"type": "string", "enum": ["backfill", "webhook", "reconcile", "receipt", "poll"],
               "description": "What last wrote the row: the first full copy, a webhook "
               "confirmation, a reconciliation, the bill flow (created or found for a receipt), "
               "or the chart-of-accounts poll."},
    "confirmed_at": {**_TIME, "description": "When Alegra last confirmed this state."},
    "updated_at": _TIME,
    "deleted": {"type": "boolean", "description": "Gone from Alegra (kept here for history)."},
    "alegra": {"type": "object", "additionalProperties": True,
               "description": "The record as Alegra's API returned it."},
}
CONTACT = {"type": "object", "properties": {
    "id": {"type": "string", "description": "Alegra's id (a string; may be a UUID)."},
    "name": {"type": "string"},
    "tax_id": {**_TEXT, "description": "RNC or cédula, digits only."},
    "id_type": _TEXT,
    "type": {"type": "array", "items": {"type": "string"}, "example": ["provider"]},
    "status": _TEXT, "email": _TEXT, "phone": _TEXT, **PROVENANCE,
}}
_ACCOUNT_FIELDS = {
    "id": {"type": "string"}, "parent_id": _TEXT, "name": {"type": "string"}, "code": _TEXT,
    "type": {**_TEXT, "example": "expense"}, "nature": _TEXT, "status": _TEXT,
    "read_only": {"type": "boolean"},
    "is_leaf": {"type": "boolean", "description": "Documents post to leaf accounts only."},
    **PROVENANCE,
}
ACCOUNT = {"type": "object", "properties": _ACCOUNT_FIELDS}
ACCOUNT_NODE = {"type": "object", "properties": {
    **_ACCOUNT_FIELDS, "children": {"type": "array", "items": ref("CachedAccountNode")}}}
TAX = {"type": "object", "properties": {
    "id": {"type": "string"}, "name": {"type": "string"},
    "percentage": {**_TEXT, "example": "18.00"}, "type": _TEXT, "status": _TEXT, **PROVENANCE,
}}
_REASON = {"type": "object", "required": ["code", "message"], "properties": {
    "code": {"type": "string", "enum": [
        "worker_down", "backfill_incomplete", "full_scan_stale", "reconcile_incomplete",
        "accounts_stale", "bills_stale", "subscriptions_missing", "subscriptions_unchecked",
        "inbox_backlog_old", "events_parked", "company_needs_attention"]},
    "message": {"type": "string"},
}}
_JOB = {"type": "object", "properties": {
    "name": {"type": "string", "example": "reconcile"}, "last_started_at": _NULL_TIME,
    "last_finished_at": _NULL_TIME, "last_success_at": _NULL_TIME,
    "last_outcome": {"type": ["string", "null"],
                     "enum": [*(outcome.value for outcome in JobOutcome), None]},
    "last_duration_s": _NULL_NUMBER, "last_error": _TEXT, "next_run_at": _NULL_TIME,
    "running": {"type": "boolean"},
    "checkpoint": {"type": ["object", "null"], "additionalProperties": True},
}}
_SUBSCRIPTION = {"type": "object", "properties": {
    "event": {"type": "string", "example": "edit-client"}, "alegra_id": _TEXT,
    "present": {"type": "boolean"}, "created_at": _NULL_TIME, "last_checked_at": _NULL_TIME,
    "recreated_count": {"type": "integer"}, "missing_since": _NULL_TIME,
}}
STATUS = {"type": "object", "required": ["trustworthy", "reasons"], "properties": {
    "trustworthy": {"type": "boolean", "description": "No rule below fires."},
    "reasons": {"type": "array", "items": _REASON},
    "checked_at": _TIME,
    "counts": {"type": "object", "additionalProperties": {
        "type": "object", "properties": {"live": {"type": "integer"},
                                         "deleted": {"type": "integer"}}}},
    "jobs": {"type": "array", "items": _JOB},
    "webhooks": {"type": "object", "properties": {
        "last_handshake_at": _NULL_TIME,
        "by_subject": {"type": "array", "items": {"type": "object", "properties": {
            "subject": {"type": "string"}, "last_received_at": _TIME,
            "deliveries": {"type": "integer"}}}}}},
    "subscriptions": {"type": "object", "properties": {
        "present": {"type": "integer"}, "missing": {"type": "integer"},
        "rows": {"type": "array", "items": _SUBSCRIPTION}}},
    "inbox": {"type": "object", "properties": {
        "by_state": _COUNTS, "pending": {"type": "integer"}, "oldest_pending_at": _NULL_TIME,
        "oldest_pending_age_s": _NULL_NUMBER, "parked_since_last_scan": {"type": "integer"}}},
    "receipts": {"type": "object", "properties": {
        "by_status": _COUNTS, "oldest_waiting_at": _NULL_TIME,
        "oldest_waiting_age_s": _NULL_NUMBER,
        "recent_failed": {"type": "array", "items": {"type": "object", "properties": {
            "id": {"type": "string"}, "partner_id": {"type": "string"},
            "error": {"type": ["object", "null"], "additionalProperties": True},
            "updated_at": _TIME}}}}},
    "worker": {"type": "object", "properties": {
        "pid": {"type": ["integer", "null"]}, "heartbeat_at": _NULL_TIME,
        "heartbeat_age_s": _NULL_NUMBER,
        "budget": {"type": ["object", "null"], "additionalProperties": True,
                   "description": "The rate budget at the last heartbeat: limit, remaining, "
                   "reset_in_s, in_flight, waiting by priority."},
        "holder": {"type": ["string", "null"], "description": "The worker (host:pid:random) "
                   "holding this company's lease, which runs its work; null: none holds it now."},
        "lease_expires_at": _NULL_TIME,
        "live_workers": {"type": "integer", "description": "Workers beating now."}}},
    "drift": {"type": ["object", "null"], "properties": {
        "id": {"type": "integer"}, "created_at": _TIME, "complete": {"type": "boolean"},
        "missing": {"type": "integer"}, "extra": {"type": "integer"},
        "different": {"type": "integer"}}},
    "notifications": {"type": "object", "description": "Partners' notifications, the whole "
                      "deployment's (not one company's): endpoints by state, the disabled ones "
                      "and why, deliveries pending.", "properties": {
        "endpoints": _COUNTS,
        "disabled": {"type": "array", "items": {"type": "object", "properties": {
            "id": {"type": "string"}, "partner": {"type": "string"},
            "reason": _TEXT, "since": _TIME}}},
        "pending": {"type": "integer"}, "oldest_pending_age_s": {"type": "number"}}},
    "doctor": {"type": "object", "description": "`alegra-sync doctor`'s latest run on the "
               "company (by the command or after its first backfill): each guess's verdict, "
               "and the settings its data showed instead, which its writes now follow.",
               "properties": {
        "checked_at": _NULL_TIME, "contradicted": {"type": "integer"},
        "findings": {"type": "array", "items": {"type": "object", "properties": {
            "check_name": {"type": "string", "example": "identification_types"},
            "guess": {"type": "string"},
            "verdict": {"type": "string", "enum": ["confirmed", "contradicted", "no evidence"]},
            "evidence": {"type": "string"}, "checked_at": _TIME,
            "ran_by": {"type": "string", "enum": ["command", "backfill"]}}}},
        "learned": {"type": "array", "items": {"type": "object", "properties": {
            "setting": {"type": "string", "example": "identification_type.CEDULA"},
            "value": {"type": "string"}, "evidence": {"type": "string"},
            "learned_at": _TIME}}}}},
}}


COMPANIES_STATUS = {"type": "object", "required": ["trustworthy", "companies"], "properties": {
    "checked_at": _TIME,
    "trustworthy": {"type": "boolean", "description": "Every company's cache can be trusted."},
    "companies": {"type": "array", "items": {"allOf": [ref("CacheStatus"), {
        "type": "object", "required": ["company", "state"], "properties": {
            "company": {"type": "string", "example": "default"},
            "state": {"type": ["string", "null"], "enum": ["active", "needs_attention", None]},
        }}]}},
}}


def _get(op_id: str, summary: str, parameters: list[dict[str, Any]], responses: dict[str, Any],
         *, description: str = "", bad: str = "") -> dict[str, Any]:
    """An admin-only read of one company's cache (`Alegra-Company`)."""
    operation = {"operationId": op_id, "summary": summary, "description": description,
                 **ADMIN_ONLY, "parameters": parameters,
                 "responses": {**responses, **AUTH_ERRORS}}
    return per_company(operation, bad=bad) if bad else per_company(operation)


LIST_CONTACTS = _get("listCachedContacts", "Cached contacts, by normalised name", [
    param("tax_id", "RNC (9 digits) or cédula (11) in any formatting (dashes, spaces, "
          "dots); exact match. Anything else is a 400."),
    param("q", "Name search: normalised (case, accents, punctuation, company suffix), "
               "matches anywhere in the name."),
    param("type", "Contact type.", {"type": "string", "enum": ["client", "provider"]}),
    param("status", "Contact status.", {"type": "string", "enum": ["active", "inactive"]}),
    INCLUDE_DELETED, LIMIT, CURSOR,
], {"200": ok("A page of contacts", page_of("CachedContact")), **BAD_QUERY})
GET_CONTACT = _get("getCachedContact", "One cached contact", [], {
    "200": ok("The contact (deleted ones too)", ref("CachedContact")),
    "404": error("Not in the cache")})
LIST_ACCOUNTS = _get("listCachedAccounts", "The cached chart of accounts", [
    param("name", "Name search, normalised like `q` for contacts."),
    param("type", "Account type, e.g. expense.", {"type": "string", "maxLength": 40}),
    param("view", "`flat` (by code) or `tree` (nested `children`; filters keep the matching "
          "accounts and their ancestors).", {"type": "string", "enum": ["flat", "tree"],
                                             "default": "flat"}),
    INCLUDE_DELETED,
], {"200": ok("The accounts", {"type": "object", "properties": {"data": {
    "type": "array", "items": {"anyOf": [ref("CachedAccount"), ref("CachedAccountNode")]}}}}),
    **BAD_QUERY})
LIST_TAXES = _get("listCachedTaxes", "The cached taxes", [INCLUDE_DELETED], {
    "200": ok("The taxes", {"type": "object", "properties": {
        "data": {"type": "array", "items": ref("CachedTax")}}}), **BAD_QUERY})
GET_STATUS = _get(
    "getCacheStatus", "Can the cache be trusted right now?", [],
    {"200": ok("The verdict and the figures behind it: the `Alegra-Company` header's company, "
               "or the only one; without the header and with several companies, each "
               "company's (`CompaniesCacheStatus`)",
               {"anyOf": [ref("CacheStatus"), ref("CompaniesCacheStatus")]})},
    description=(status.__doc__ or "").split("\n\n", 1)[-1], bad=MALFORMED,
)
OPENAPI_SCHEMAS: dict[str, Any] = {
    "CachedContact": CONTACT,
    "CachedAccount": ACCOUNT,
    "CachedAccountNode": ACCOUNT_NODE,
    "CachedTax": TAX,
    "CacheStatus": STATUS,
    "CompaniesCacheStatus": COMPANIES_STATUS,
}
