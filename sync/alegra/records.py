"""Alegra JSON → the cache's records. Pure: no I/O, no clock.

Alegra's contact shape differs between REST (name is a string, identification a string plus
`identificationObject`) and webhooks (name may be an object). These functions accept both, so
every path into the cache — backfill, webhook confirmation, reconciliation, write-through after a
create — stores the same normalised record.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sync.alegra.payloads import bill_number, bill_provider_id
from sync.dominican import loose_tax_id
from sync.names import display_name, name_key


@dataclass(frozen=True)
class ContactRecord:
    alegra_id: str
    name: str
    name_key: str
    tax_id: str | None
    id_type: str | None
    types: tuple[str, ...]
    status: str | None
    email: str | None
    phone: str | None
    raw: dict[str, Any]

    @property
    def is_provider(self) -> bool:
        return "provider" in self.types


@dataclass(frozen=True)
class AccountRecord:
    alegra_id: str
    parent_id: str | None
    name: str
    name_key: str
    code: str | None
    type: str | None
    nature: str | None
    status: str | None
    read_only: bool
    is_leaf: bool
    raw: dict[str, Any]


@dataclass(frozen=True)
class TaxRecord:
    alegra_id: str
    name: str
    percentage: str | None
    type: str | None
    status: str | None
    raw: dict[str, Any]


@dataclass(frozen=True)
class BillRecord:
    """A bill this service knows exists in Alegra, as the `bills` table keeps it."""

    alegra_id: str
    provider_id: str | None
    provider_tax_id: str | None
    ncf_key: str | None
    bill_date: str | None
    total: str | None
    status: str | None
    receipt_id: str | None
    raw: dict[str, Any]


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return str(value)


def identification(raw: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(digits, type) of a contact's identification, wherever Alegra put it: `identification` as
    a string (REST, beside `identificationObject`) or an object (webhooks), or
    `identificationObject` alone. The one reader of it: contacts, and bills' providers."""
    ident = raw.get("identification")
    obj = raw.get("identificationObject")
    if isinstance(ident, dict):
        obj, ident = ident, ident.get("number")
    id_type = obj.get("type") if isinstance(obj, dict) else None
    if ident is None and isinstance(obj, dict):
        ident = obj.get("number")
    return loose_tax_id(_text(ident)), _text(id_type)


def _types(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,) if value else ()
    if isinstance(value, list):
        return tuple(sorted({str(v) for v in value if v}))
    return ()


def contact_from_alegra(raw: dict[str, Any]) -> ContactRecord:
    """A contact from REST or from a webhook payload. Raises ValueError without an id."""
    alegra_id = _text(raw.get("id"))
    if alegra_id is None:
        raise ValueError("contact without id")
    name = display_name(raw.get("name"))
    tax_id, id_type = identification(raw)
    return ContactRecord(
        alegra_id=alegra_id,
        name=name,
        name_key=name_key(name),
        tax_id=tax_id,
        id_type=id_type,
        types=_types(raw.get("type")),
        status=_text(raw.get("status")),
        email=_text(raw.get("email")),
        phone=_text(raw.get("phonePrimary") or raw.get("mobile")),
        raw=raw,
    )


def account_from_alegra(raw: dict[str, Any]) -> AccountRecord:
    """A chart-of-accounts node (plain form, or a tree node whose `children` are dropped)."""
    alegra_id = _text(raw.get("id"))
    if alegra_id is None:
        raise ValueError("account without id")
    children = raw.get("children")
    flat = {k: v for k, v in raw.items() if k != "children"}
    name = str(raw.get("name") or "")
    return AccountRecord(
        alegra_id=alegra_id,
        parent_id=_text(raw.get("idParent")),
        name=name,
        name_key=name_key(name),
        code=_text(raw.get("code")),
        type=_text(raw.get("type")),
        nature=_text(raw.get("nature")),
        status=_text(raw.get("status")),
        read_only=bool(raw.get("readOnly")),
        is_leaf=not children,
        raw=flat,
    )


def flatten_accounts(nodes: list[dict[str, Any]]) -> list[AccountRecord]:
    """Every node of a tree (or plain list); parents before children, leaf flags from the tree."""
    out: list[AccountRecord] = []
    parents_with_children: set[str] = set()
    stack = list(reversed(nodes))
    while stack:
        node = stack.pop()
        record = account_from_alegra(node)
        out.append(record)
        children = node.get("children") or []
        stack.extend(reversed(children))
    for record in out:
        if record.parent_id:
            parents_with_children.add(record.parent_id)
    return [_with_leaf(r, r.alegra_id not in parents_with_children) for r in out]


def _with_leaf(record: AccountRecord, is_leaf: bool) -> AccountRecord:
    if record.is_leaf == is_leaf:
        return record
    return AccountRecord(**{**record.__dict__, "is_leaf": is_leaf})


def tax_from_alegra(raw: dict[str, Any]) -> TaxRecord:
    alegra_id = _text(raw.get("id"))
    if alegra_id is None:
        raise ValueError("tax without id")
    return TaxRecord(
        alegra_id=alegra_id,
        name=str(raw.get("name") or ""),
        percentage=_text(raw.get("percentage")),
        type=_text(raw.get("type")),
        status=_text(raw.get("status")),
        raw=raw,
    )


def bill_from_alegra(
    raw: Mapping[str, Any], *, provider_tax_id: str | None = None, receipt_id: str | None = None
) -> BillRecord:
    """A bill as Alegra returned it → the row we keep. Raises ValueError without an id."""
    if raw.get("id") in (None, ""):
        raise ValueError("bill without id")
    total = raw.get("total")
    return BillRecord(
        alegra_id=str(raw["id"]),
        provider_id=bill_provider_id(raw),
        provider_tax_id=provider_tax_id,
        ncf_key=bill_number(raw),
        bill_date=None if raw.get("date") is None else str(raw["date"]),
        total=None if total is None else str(total),
        status=None if raw.get("status") is None else str(raw["status"]),
        receipt_id=receipt_id,
        raw=dict(raw),
    )


def bill_as_shown(raw: Mapping[str, Any]) -> BillRecord:
    """A bill Alegra showed us (a webhook's confirmation, a list), with the tax id of the provider
    embedded in it (None when the bill names its provider by id only)."""
    provider = raw.get("provider")
    tax_id = identification(provider)[0] if isinstance(provider, Mapping) else None
    return bill_from_alegra(raw, provider_tax_id=tax_id)
