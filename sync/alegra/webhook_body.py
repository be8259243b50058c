"""A webhook delivery's bytes → what the inbox records about it. Pure: no I/O, never raises.

Alegra sends `{"subject": "<event>", "message": {"<resource>": {...}}}` with resource `client`,
`bill`, `item` or `invoice`. Nothing in it is trusted: the worker only takes the resource and its
id from here and fetches the record from Alegra, so the rest of the object is never read (a
contact's `name` may be a string or an object, `firstName`… or `fullname`, and that cannot matter).
What edit and delete events carry (a whole object or only the id) is [unverified]: only the id is
required.

    shape = "ok"         resource and id found
            "unknown"    valid JSON, but not the shape above (no message, no resource, no id)
            "malformed"  not JSON (or not UTF-8), or its subject or id is text that cannot be
                         stored (a lone surrogate such as `"\\ud83d"`: valid JSON, not UTF-8)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

RESOURCES = ("client", "bill", "item", "invoice")
MAX_ID_LENGTH = 64  # Alegra ids: numeric strings or UUIDs (36 characters)


@dataclass(frozen=True)
class ParsedDelivery:
    """What the receiver stores next to the raw body."""

    shape: str
    subject: str | None = None
    resource: str | None = None
    resource_id: str | None = None


MALFORMED = ParsedDelivery(shape="malformed")


def parse_delivery(body: bytes) -> ParsedDelivery:
    """Classify a delivery body. Total: every input gives a ParsedDelivery, so one odd body can
    never fail the batch of deliveries it is written with (anything unforeseen: `malformed`)."""
    try:
        parsed = _classify(body)
    except Exception:
        return MALFORMED
    return parsed if _storable(parsed) else MALFORMED


def _classify(body: bytes) -> ParsedDelivery:
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return MALFORMED
    if not isinstance(data, dict):
        return ParsedDelivery(shape="unknown")
    subject = _text(data.get("subject"))
    found = _resource(data.get("message"))
    if found is None:
        return ParsedDelivery(shape="unknown", subject=subject)
    resource, obj = found
    resource_id = _id(obj.get("id"))
    if resource_id is None or not _subject_agrees(subject, resource):
        return ParsedDelivery(shape="unknown", subject=subject, resource=resource)
    return ParsedDelivery("ok", subject, resource, resource_id)


def _storable(parsed: ParsedDelivery) -> bool:
    """Every text the row records encodes as UTF-8. JSON's `\\ud83d` escape (what JavaScript
    leaves when it cuts a string inside an emoji) decodes to a lone surrogate, which SQLite
    cannot be given: the INSERT would fail, and with it the whole batch."""
    try:
        for text in (parsed.subject, parsed.resource, parsed.resource_id):
            if text is not None:
                text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _resource(message: Any) -> tuple[str, dict[str, Any]] | None:
    """The one known resource object under `message`, or None."""
    if isinstance(message, str):  # defensive: a message serialised twice
        try:
            message = json.loads(message)
        except (ValueError, RecursionError):
            return None
    if not isinstance(message, dict):
        return None
    found = None
    for resource in RESOURCES:
        obj = message.get(resource)
        if isinstance(obj, dict):
            if found is not None:
                return None  # two resources: which one the event is about is unclear
            found = (resource, obj)
    return found


def _id(value: Any) -> str | None:
    """Alegra ids are strings; an integer id (older payloads) is accepted and kept as text."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value).strip()
    if not text or len(text) > MAX_ID_LENGTH:
        return None
    return text


def _text(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    return value.strip()[:100] or None


def _subject_agrees(subject: str | None, resource: str) -> bool:
    """A subject naming a different resource than the message holds is not trusted."""
    if subject is None:
        return True
    _, dash, named = subject.rpartition("-")
    return not dash or named not in RESOURCES or named == resource
