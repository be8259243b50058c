"""Webhook subscriptions and the bodies Alegra delivers (pure apart from the state they edit).

Exactly 12 events exist; there is none for categories. Delivery bodies are
`{"subject": event, "message": {"client"|"bill": {...}}}`; a delete carries only `{"id"}`; a
contact's `name` arrives as a string or as an object, per `SimConfig.webhook_name_style`.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from sync.simulator import errors
from sync.simulator.errors import SimError, bad_request, not_found
from sync.simulator.fields import required_text

if TYPE_CHECKING:
    from sync.simulator.state import SimState

RESOURCES = ("invoice", "bill", "client", "item")  # also the key under "message" in a delivery
EVENTS = frozenset(f"{verb}-{res}" for verb in ("new", "edit", "delete") for res in RESOURCES)
NAME_STYLES = {"string": ("string",), "object": ("split", "fullname"),
               "mixed": ("string", "split", "fullname")}


def validate(state: SimState, body: dict[str, Any], *, except_id: str | None = None) -> None:
    """Raises SimError(400) for an unknown event or no URL, or the duplicate status for a
    subscription with the same event and URL."""
    event, url = body.get("event"), required_text(body, "url")
    if event not in EVENTS:
        raise bad_request(f"event debe ser uno de {sorted(EVENTS)}")
    with state.lock:
        if any(sub["event"] == event and sub["url"] == url and sub_id != except_id
               for sub_id, sub in state.subscriptions.items()):
            raise SimError(errors.DUPLICATE_SUBSCRIPTION_STATUS, "La suscripción ya existe")


def create(state: SimState, body: dict[str, Any]) -> dict[str, Any]:
    """Store a validated subscription (after the URL answered the handshake)."""
    validate(state, body)
    with state.lock:
        record = {"id": state.ids["subscriptions"].next(), "event": body["event"],
                  "url": body["url"]}
        state.subscriptions[record["id"]] = record
        return record


def update(state: SimState, sub_id: str, body: dict[str, Any]) -> dict[str, Any]:
    with state.lock:
        changes: dict[str, Any] = {k: body[k] for k in ("event", "url") if k in body}
        record = {**get(state, sub_id), **changes}
        validate(state, record, except_id=sub_id)
        state.subscriptions[sub_id] = record
        return record


def get(state: SimState, sub_id: str) -> dict[str, Any]:
    with state.lock:
        record = state.subscriptions.get(sub_id)
    if record is None:
        raise not_found("La suscripción")
    return record


def delivery_body(event: str, record: dict[str, Any], style: str, turn: int) -> dict[str, Any]:
    """What Alegra POSTs to a subscriber for `event` about `record` (a snapshot)."""
    resource = event.split("-", 1)[1]
    payload = copy.deepcopy(record)
    if resource == "client" and isinstance(payload.get("name"), str):
        payload["name"] = webhook_name(payload["name"], style, turn)
    return {"subject": event, "message": {resource: payload}}


def webhook_name(name: str, style: str, turn: int) -> str | dict[str, Any]:
    """A contact's name as webhooks carry it: "string", "object" (alternating the split and the
    `fullname` forms) or "mixed" (string, split, fullname in turn)."""
    forms = NAME_STYLES[style]
    form = forms[turn % len(forms)]
    if form == "string":
        return name
    if form == "fullname":
        return {"fullname": name}
    first, _, rest = name.partition(" ")
    return {"firstName": first, "lastName": rest}
