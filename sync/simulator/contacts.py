"""Contacts (clients and suppliers alike): their rules and their read shape.

Writes send `identification` as an object `{"type", "number"}`; reads give the number as the
string `identification` plus `identificationObject`. The number is stored exactly as typed, so
a contact typed with dashes (`1-31-24679-6`) is not found by a search for the bare digits — the
risk the facts sheet describes.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sync.simulator import contrary
from sync.simulator.errors import bad_request, not_found
from sync.simulator.fields import object_field, required_text, timestamp

if TYPE_CHECKING:
    from sync.simulator.state import SimState

CONTACT_TYPES = frozenset({"client", "provider"})
_FILTERS = ("identification", "name", "type", "email", "status", "query")
_TEXT_FIELDS = ("email", "phonePrimary", "phoneSecondary", "mobile", "fax", "observations",
                "kindOfPerson", "regime")


def create(state: SimState, body: dict[str, Any], *, typed_by_person: bool = False,
           emit: bool = True) -> dict[str, Any]:
    """POST /contacts. Raises SimError(400) without a name or with a malformed field."""
    required_text(body, "name")
    now = timestamp()
    record: dict[str, Any] = {
        "name": "", "identification": None, "identificationObject": None, "type": [],
        "status": "active", "address": {"address": None, "city": None},
        **dict.fromkeys(_TEXT_FIELDS),
        "seller": None, "priceList": None, "term": None, "internalContacts": [],
        "created_at": now, "updated_at": now,
    }
    _apply(record, body, typed_by_person, state.config.contrary)
    with state.lock:
        record = {"id": state.ids["contacts"].next(), **record}
        state.contacts[record["id"]] = record
        if emit:
            state.emit("new-client", record)
    return record


def update(state: SimState, contact_id: str, body: dict[str, Any], *,
           typed_by_person: bool = False) -> dict[str, Any]:
    """PUT /contacts/{id}: a partial update. Raises SimError(404) for an unknown contact."""
    if "name" in body:
        required_text(body, "name")
    with state.lock:
        record = copy.deepcopy(get(state, contact_id))
        # on a copy: a rejected update changes nothing
        _apply(record, body, typed_by_person, state.config.contrary)
        record["updated_at"] = timestamp()
        state.contacts[contact_id] = record
        state.emit("edit-client", record)
        return record


def delete(state: SimState, contact_id: str) -> None:
    """DELETE /contacts/{id}: soft — the contact leaves GET and lists but is kept aside."""
    with state.lock:
        record = get(state, contact_id)
        state.deleted_contacts[contact_id] = state.contacts.pop(contact_id)
        state.emit("delete-client", {"id": record["id"]})


def get(state: SimState, contact_id: str) -> dict[str, Any]:
    with state.lock:
        record = state.contacts.get(contact_id)
    if record is None:
        raise not_found("El contacto")
    return record


def search(state: SimState, params: Mapping[str, str]) -> list[dict[str, Any]]:
    """Contacts matching the list filters: `identification` exactly as stored, `name` as a
    case-insensitive substring, `type`, `email`, `status`, `query` (name, identification, e-mail).
    How Alegra matches is [unverified]; exact identification is the pessimistic reading."""
    with state.lock:
        rows = list(state.contacts.values())
    if not any(name in params for name in _FILTERS):
        return rows  # a plain listing (backfill, reconciliation): every row, without the scan
    return [row for row in rows if _matches(row, params, exact_names=state.config.contrary)]


def _matches(row: dict[str, Any], params: Mapping[str, str], *, exact_names: bool) -> bool:
    if "identification" in params and row["identification"] != params["identification"]:
        return False
    if "name" in params and not (
            contrary.name_matches(row["name"], params["name"]) if exact_names
            else params["name"].lower() in row["name"].lower()):
        return False
    if "type" in params and params["type"] not in row["type"]:
        return False
    if "email" in params and (row["email"] or "").lower() != params["email"].lower():
        return False
    if "status" in params and row["status"] != params["status"]:
        return False
    query = params.get("query", "").lower()
    haystack = " ".join(str(row[k] or "") for k in ("name", "identification", "email")).lower()
    return query in haystack


def _apply(record: dict[str, Any], body: dict[str, Any], typed_by_person: bool,
           contrary_mode: bool = False) -> None:
    if "name" in body:
        record["name"] = body["name"]
    if "identification" in body:
        _apply_identification(record, body, typed_by_person, contrary_mode)
    if "type" in body:
        record["type"] = _types(body["type"])
    if "status" in body:
        if body["status"] not in {"active", "inactive"}:
            raise bad_request("status debe ser active o inactive")
        record["status"] = body["status"]
    address = object_field(body, "address")
    if address is not None:
        record["address"] = {**record["address"], **address}
    for name in _TEXT_FIELDS:
        if name in body:
            record[name] = body[name]


def _apply_identification(record: dict[str, Any], body: dict[str, Any], loose: bool,
                          contrary_mode: bool) -> None:
    value = body["identification"]
    if loose and isinstance(value, str):  # the web app takes whatever the person typed
        value = {"type": body.get("identificationType"), "number": value}
    if value is None:
        record["identification"], record["identificationObject"] = None, None
        return
    # The API takes only the object form: a client that sends the read shape (a string) is
    # answered 400, so the write/read asymmetry cannot go unnoticed in tests.
    if not isinstance(value, dict) or not isinstance(value.get("number"), str):
        raise bad_request('identification debe ser un objeto {"type", "number"}')
    if contrary_mode and not loose:
        contrary.check_identification_type(value)
    record["identification"] = value["number"]
    record["identificationObject"] = {"type": value.get("type"), "number": value["number"]}


def _types(value: Any) -> list[str]:
    kinds = [value] if isinstance(value, str) else value
    if not isinstance(kinds, list) or not set(kinds) <= CONTACT_TYPES:
        raise bad_request("type debe ser una lista con client y/o provider")
    return [kind for kind in ("client", "provider") if kind in kinds]
