"""Parsing delivery bodies: every shape Alegra may send, and every shape it should not."""

from __future__ import annotations

import json

import pytest

from sync.alegra.webhook_body import ParsedDelivery, parse_delivery
from tests.webhooks.conftest import delivery


def test_client_event_with_a_string_name() -> None:
    """The REST-like shape gives the resource, its id and the subject."""
    parsed = parse_delivery(delivery("new-client", "client", id="101", name="Ferretería Ochoa"))
    assert (parsed.shape, parsed.subject, parsed.resource, parsed.resource_id) == (
        "ok", "new-client", "client", "101")


@pytest.mark.parametrize("name", [
    {"firstName": "Juan", "secondName": "Pablo", "lastName": "Pérez", "secondLastName": "Gómez"},
    {"firstName": "Ana", "lastName": "Ruiz"},
    {"fullname": "Ferretería Ochoa, S.R.L."},
    None,
    42,
])
def test_client_event_with_any_name_form(name: object) -> None:
    """A name object (split parts or `fullname`), or junk in its place, does not stop the parse."""
    parsed = parse_delivery(delivery("edit-client", "client", id="7", name=name))
    assert (parsed.shape, parsed.resource_id) == ("ok", "7")


def test_delete_event_with_only_the_id() -> None:
    """A delete that carries only the id is a complete delivery."""
    uuid = "a1b2c3d4-0000-4000-8000-1234567890ab"
    parsed = parse_delivery(delivery("delete-client", "client", id=uuid))
    assert parsed.shape == "ok"
    assert parsed.resource_id == "a1b2c3d4-0000-4000-8000-1234567890ab"


def test_integer_id_is_kept_as_text() -> None:
    """An id sent as a JSON number becomes the string Alegra ids are."""
    assert parse_delivery(delivery("edit-client", "client", id=42)).resource_id == "42"


@pytest.mark.parametrize("resource", ["bill", "item", "invoice"])
def test_other_resources_are_recognised(resource: str) -> None:
    """Bills, items and invoices parse to their resource (what to do with them is decided later)."""
    parsed = parse_delivery(delivery(f"new-{resource}", resource, id="5"))
    assert (parsed.shape, parsed.resource, parsed.resource_id) == ("ok", resource, "5")


@pytest.mark.parametrize("fields", [{}, {"id": None}, {"id": ""}, {"id": True}, {"id": [1]},
                                    {"id": "x" * 65}, {"name": "No id"}])
def test_missing_or_bad_id_is_unknown(fields: dict[str, object]) -> None:
    """Without a usable id there is nothing to fetch: the shape is unknown."""
    parsed = parse_delivery(delivery("edit-client", "client", **fields))
    assert parsed.shape == "unknown"
    assert parsed.resource_id is None


@pytest.mark.parametrize("body", [
    {"subject": "new-client"},
    {"subject": "new-client", "message": None},
    {"subject": "new-client", "message": {}},
    {"subject": "new-client", "message": {"contact": {"id": "1"}}},
    {"subject": "new-client", "message": {"client": "1"}},
    {"subject": "new-client", "message": {"client": {"id": "1"}, "bill": {"id": "2"}}},
    [1, 2, 3],
    "just a string",
    None,
])
def test_unknown_shapes(body: object) -> None:
    """Valid JSON without exactly one known resource object is stored as unknown."""
    assert parse_delivery(json.dumps(body).encode()).shape == "unknown"


def test_unknown_shape_keeps_the_subject() -> None:
    """Even when the message is unusable, the subject is recorded for the operator."""
    assert parse_delivery(b'{"subject": "new-client"}').subject == "new-client"


def test_subject_naming_another_resource_is_not_trusted() -> None:
    """`edit-bill` carrying a client is inconsistent: unknown, not a client event."""
    assert parse_delivery(delivery("edit-bill", "client", id="1")).shape == "unknown"


def test_unknown_event_name_with_a_known_resource_parses() -> None:
    """A new event name Alegra might add still parses; the worker decides to skip it."""
    parsed = parse_delivery(delivery("archive-client", "client", id="3"))
    assert (parsed.shape, parsed.subject) == ("ok", "archive-client")


def test_missing_subject_parses_without_one() -> None:
    """A body without a subject keeps its resource and id; the worker decides to skip it."""
    parsed = parse_delivery(json.dumps({"message": {"client": {"id": "3"}}}).encode())
    assert (parsed.shape, parsed.subject, parsed.resource_id) == ("ok", None, "3")


def test_message_serialised_twice_is_read() -> None:
    """A message sent as a JSON string holding the object is still understood."""
    body = json.dumps({"subject": "new-client", "message": json.dumps({"client": {"id": "9"}})})
    assert parse_delivery(body.encode()).resource_id == "9"


@pytest.mark.parametrize("body", [b"not json", b"{\"subject\": ", b"\xff\xfe\x00garbage",
                                  b"{'single': 'quotes'}", b"[" * 100_000])
def test_non_json_is_malformed(body: bytes) -> None:
    """Bytes that are not JSON (or not UTF-8) are malformed, never an exception."""
    assert parse_delivery(body).shape == "malformed"


def test_a_message_serialised_twice_and_nested_too_deep_is_unknown_not_an_error() -> None:
    """A `message` string that decodes into nesting deeper than Python's recursion limit does
    not raise (one such body would otherwise fail every delivery committed with it)."""
    body = json.dumps({"subject": "edit-client", "message": "[" * 100_000}).encode()
    assert parse_delivery(body).shape == "unknown"


@pytest.mark.parametrize("body", [
    b'{"subject": "edit-client\\ud83d", "message": {"client": {"id": "1"}}}',
    b'{"subject": "edit-client", "message": {"client": {"id": "1\\ud83d"}}}',
    b'{"subject": "\\udc00edit-client", "message": {"client": {"id": 7}}}',
])
def test_a_lone_surrogate_in_what_the_row_records_is_malformed(body: bytes) -> None:
    """A subject or id holding a lone surrogate escape (valid JSON, but text with no UTF-8
    form, which SQLite cannot store) is malformed, with nothing parsed kept."""
    assert parse_delivery(body) == ParsedDelivery(shape="malformed")


def test_a_lone_surrogate_elsewhere_in_the_body_does_not_matter() -> None:
    """Only the subject and id are stored from the body: a surrogate in the contact's name
    leaves a usable delivery (the worker fetches the contact from Alegra anyway)."""
    body = b'{"subject": "edit-client", "message": {"client": {"id": "1", "name": "A\\ud83d"}}}'
    assert parse_delivery(body).shape == "ok"


@pytest.mark.parametrize(("body", "shape"), [
    (b'{"subject": "edit-client", "message": {"client": {"id": 1e999999}}}', "unknown"),
    (b'{"subject": "edit-client", "message": {"client": {"id": ' + b"9" * 5000 + b"}}}",
     "malformed"),  # past Python's 4,300-digit limit for int()
    (b"123", "unknown"),
    (b"\x00", "malformed"),
])
def test_huge_numbers_and_odd_bytes_are_classified_not_raised(body: bytes, shape: str) -> None:
    """Numbers past a float or an int's digit limit, bare scalars and NUL bytes give a shape."""
    assert parse_delivery(body).shape == shape
