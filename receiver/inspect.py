"""GET /v1/cache/*: what the local cache holds, for operators (admin keys only).

Every row carries the Alegra fields as cached, where the row came from (`source`: backfill,
webhook, reconcile, receipt or poll), when Alegra last confirmed it (`confirmed_at`) and whether
it is `deleted` (soft: gone from Alegra, kept for history). Reads only; never calls Alegra.
Each reads one company's cache: the one `Alegra-Company` names (`receiver/company.py`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute

from receiver import inspect_spec as spec
from receiver import query
from receiver.auth import require_admin
from receiver.company import company_db, reachable, requested_company
from receiver.errors import ApiError
from receiver.openapi import ApiRoute
from sync.names import name_key
from sync.status import cache_status, companies_status
from sync.store import ops_queries
from sync.store.contacts import get_cached_contact
from sync.store.db import Row

OPENAPI_SCHEMAS = spec.OPENAPI_SCHEMAS

CONTACT_TYPES = ("client", "provider")
STATUSES = ("active", "inactive")


def _cached(row: Row) -> dict[str, Any]:
    """The provenance every cached row shares, and Alegra's own JSON as received."""
    return {
        "source": row["source"],
        "confirmed_at": row["confirmed_at"],
        "updated_at": row["updated_at"],
        "deleted": bool(row["deleted"]),
        "alegra": json.loads(row["raw"]),
    }


def contact_view(row: Row) -> dict[str, Any]:
    return {
        "id": row["alegra_id"], "name": row["name"], "tax_id": row["tax_id"],
        "id_type": row["id_type"], "type": json.loads(row["types"]), "status": row["status"],
        "email": row["email"], "phone": row["phone"], **_cached(row),
    }


def account_view(row: Row) -> dict[str, Any]:
    return {
        "id": row["alegra_id"], "parent_id": row["parent_id"], "name": row["name"],
        "code": row["code"], "type": row["type"], "nature": row["nature"],
        "status": row["status"], "read_only": bool(row["read_only"]),
        "is_leaf": bool(row["is_leaf"]), **_cached(row),
    }


def tax_view(row: Row) -> dict[str, Any]:
    return {
        "id": row["alegra_id"], "name": row["name"], "percentage": row["percentage"],
        "type": row["type"], "status": row["status"], **_cached(row),
    }


def account_tree(accounts: Sequence[dict[str, Any]], matched: set[str]) -> list[dict[str, Any]]:
    """Nest accounts under their parents, keeping the matched ones and their ancestors (pure).

    An account whose parent is not cached (or not kept) becomes a root.
    """
    by_id = {a["id"]: a for a in accounts}
    kept: set[str] = set()
    for account_id in matched:
        current: str | None = account_id
        while current is not None and current in by_id and current not in kept:
            kept.add(current)
            current = by_id[current]["parent_id"]
    nodes = {a["id"]: {**a, "children": []} for a in accounts if a["id"] in kept}
    roots: list[dict[str, Any]] = []
    for node in nodes.values():
        parent = nodes.get(node["parent_id"]) if node["parent_id"] else None
        (parent["children"] if parent is not None else roots).append(node)
    return roots


async def list_contacts(request: Request) -> JSONResponse:
    """GET /v1/cache/contacts: filtered, ordered by normalised name, cursor-paged."""
    db = await company_db(request, await require_admin(request))
    params = request.query_params
    tax_id = query.tax_id(params)
    search = query.text(params, "q")
    limit = query.limit(params)
    rows = await ops_queries.contacts_page(
        db,
        tax_id=tax_id,
        name_fragment=name_key(search) if search else None,
        contact_type=query.choice(params, "type", CONTACT_TYPES),
        status=query.choice(params, "status", STATUSES),
        include_deleted=query.flag(params, "include_deleted"),
        after=query.cursor(params, (str, str)),
        limit=limit + 1,
    )
    page = rows[:limit]
    next_cursor = (
        query.encode_cursor([page[-1]["name_key"], page[-1]["alegra_id"]])
        if len(rows) > limit else None
    )
    return JSONResponse({"data": [contact_view(r) for r in page], "next_cursor": next_cursor})


async def get_contact(request: Request) -> JSONResponse:
    """GET /v1/cache/contacts/{contact_id}: one cached contact, deleted or not."""
    db = await company_db(request, await require_admin(request))
    row = await get_cached_contact(db, request.path_params["contact_id"])
    if row is None:
        raise ApiError(404, "not_found", "no contact with this id in the cache")
    return JSONResponse(contact_view(row))


async def list_accounts(request: Request) -> JSONResponse:
    """GET /v1/cache/accounts: the chart of accounts, flat (by code) or as a tree."""
    db = await company_db(request, await require_admin(request))
    params = request.query_params
    view = query.choice(params, "view", ("flat", "tree")) or "flat"
    wanted_name = query.text(params, "name")
    wanted_type = query.text(params, "type")
    rows = await ops_queries.all_accounts(
        db, include_deleted=query.flag(params, "include_deleted")
    )
    accounts = [account_view(r) for r in rows]
    fragment = name_key(wanted_name) if wanted_name else ""
    matched = [
        a for a, r in zip(accounts, rows, strict=True)
        if fragment in r["name_key"] and (wanted_type is None or a["type"] == wanted_type)
    ]
    if view == "tree":
        return JSONResponse({"data": account_tree(accounts, {a["id"] for a in matched})})
    return JSONResponse({"data": matched})


async def list_taxes(request: Request) -> JSONResponse:
    """GET /v1/cache/taxes: every cached tax."""
    db = await company_db(request, await require_admin(request))
    include_deleted = query.flag(request.query_params, "include_deleted")
    rows = await ops_queries.all_taxes(db, include_deleted=include_deleted)
    return JSONResponse({"data": [tax_view(r) for r in rows]})


async def get_status(request: Request) -> JSONResponse:
    """GET /v1/cache/status: can the cache be trusted right now, and the figures behind it, for
    the company in `Alegra-Company`; without it, for the only company, or else every company's
    (`sync.status.companies_status`)."""
    admin = await require_admin(request)
    settings = request.app.state.settings
    companies = await reachable(request, admin)
    if requested_company(request) is None and len(companies) != 1:
        return JSONResponse(await companies_status(request.app.state.db, settings, companies))
    return JSONResponse(await cache_status(await company_db(request, admin), settings))


routes: list[BaseRoute] = [
    ApiRoute("/v1/cache/contacts", list_contacts, "GET", spec.LIST_CONTACTS),
    ApiRoute("/v1/cache/contacts/{contact_id}", get_contact, "GET", spec.GET_CONTACT),
    ApiRoute("/v1/cache/accounts", list_accounts, "GET", spec.LIST_ACCOUNTS),
    ApiRoute("/v1/cache/taxes", list_taxes, "GET", spec.LIST_TAXES),
    ApiRoute("/v1/cache/status", get_status, "GET", spec.GET_STATUS),
]
