"""The company a request is about: the header `Alegra-Company: <id>` (as Stripe's
`Stripe-Account`), checked against what the key may reach.

A partner key reaches the live companies it is granted, an admin key every live one (a company is
live until it is removed). The header may be left out when the key reaches exactly one company;
a deployment that never added a company therefore answers as it always did. A value that is not
a company id is a 400; a company the key does not reach, or that does not exist, is one and the
same 404, so ids cannot be probed. What a key reaches is read once per request and never kept
longer: a revoked grant counts from the next request on.

Receipts are the exception: their ids are unique across companies, so `receipt_scope` finds the
receipt's company from the receipt itself.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request

from receiver.errors import ApiError
from receiver.openapi import error
from sync.store.companies import granted_companies, is_granted, live_companies, receipt_company
from sync.store.db import Database
from sync.store.partners import Partner

HEADER = "Alegra-Company"
COMPANY_ID = re.compile(r"[a-z0-9-]{1,63}")
_HOW = f"send `{HEADER}: <company id>` (`alegra-sync companies list` shows the ids)"


def _unknown() -> ApiError:
    return ApiError(404, "unknown_company", "no company with this id for this key", field=HEADER)


def requested_company(request: Request) -> str | None:
    """The header's company id; None when absent. Raises ApiError 400 when malformed."""
    values = request.headers.getlist(HEADER)
    if not values:
        return None
    value = values[0].strip()
    if len(values) > 1 or not COMPANY_ID.fullmatch(value):
        raise ApiError(400, "invalid_company", f"{HEADER}: one company id, 1 to 63 lowercase "
                       "letters, digits and dashes", field=HEADER)
    return value


async def reachable(request: Request, partner: Partner) -> list[str]:
    """The live companies this key reaches, read once per request."""
    cached: list[str] | None = getattr(request.state, "reachable_companies", None)
    if cached is None:
        db: Database = request.app.state.db
        cached = (await live_companies(db) if partner.is_admin
                  else await granted_companies(db, partner.id))
        request.state.reachable_companies = cached
    return cached


async def resolve_company(request: Request, partner: Partner) -> str:
    """The company this request is about. Raises ApiError 400 (header malformed, or missing
    while the key reaches several companies or none) or 404 (not reached, or no such company)."""
    wanted = requested_company(request)
    companies = await reachable(request, partner)
    if wanted is None:
        if len(companies) == 1:
            return companies[0]
        raise ApiError(400, "missing_company", f"this key reaches {len(companies)} companies: "
                       f"{_HOW}", field=HEADER)
    if wanted not in companies:
        raise _unknown()
    return wanted


async def company_db(request: Request, partner: Partner) -> Database:
    """The store handle scoped to the request's company (`resolve_company`)."""
    scoped: Database = request.app.state.db.for_company(await resolve_company(request, partner))
    return scoped


async def receipt_scope(request: Request, partner: Partner, receipt_id: str) -> Database | None:
    """The store handle scoped to the receipt's own company if this key may read it there:
    an admin key any company, a partner key one it is granted (a removed company's too). With
    the header, the receipt must also belong to that company. None: answer 404 as for a
    receipt that does not exist. Raises ApiError 400/404 for the header itself."""
    wanted = requested_company(request)
    if wanted is not None:
        await resolve_company(request, partner)
    db: Database = request.app.state.db
    company = await receipt_company(db, receipt_id)
    if company is None or (wanted is not None and wanted != company):
        return None
    if not partner.is_admin and not await is_granted(db, partner.id, company):
        return None
    return db.for_company(company)


# --- OpenAPI ------------------------------------------------------------------------------------

PARAMETER: dict[str, Any] = {
    "name": HEADER, "in": "header", "required": False,
    "schema": {"type": "string", "pattern": f"^{COMPANY_ID.pattern}$"},
    "example": "default",
    "description": "The company (Alegra account) the request is about. May be left out when the "
    "key reaches exactly one company (a deployment that never added one: `default`). A company "
    "the key is not granted and one that does not exist are the same 404.",
}
MALFORMED = "`invalid_company`: `Alegra-Company` is not a company id"
RECEIPT_PARAMETER: dict[str, Any] = {
    **PARAMETER, "description": "Optional: receipt ids are unique across companies, so a receipt "
    "is found in whichever company holds it, if the key is granted that company. When sent, the "
    "receipt must belong to this company (else 404).",
}
_BAD = f"{MALFORMED}; `missing_company`: left out while the key reaches several companies"
_UNKNOWN = "`unknown_company`: a company this key is not granted, or none with this id"


def per_company(operation: dict[str, Any], parameter: dict[str, Any] = PARAMETER,
                bad: str = _BAD) -> dict[str, Any]:
    """The operation with the `Alegra-Company` header and its 400 / 404 answers added."""
    responses = dict(operation["responses"])
    for status, text in (("400", bad), ("404", _UNKNOWN)):
        known = responses.get(status)
        description = text if known is None else f"{known['description']}; or {text}"
        responses[status] = {**(known or error(text)), "description": description}
    return {**operation, "parameters": [*operation.get("parameters", ()), parameter],
            "responses": responses}
