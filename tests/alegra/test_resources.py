"""One function per Alegra operation, against a fake Alegra that filters and pages like it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug.wrappers import Request, Response

from sync.alegra import resources
from sync.alegra.budget import Priority
from sync.alegra.errors import Unavailable
from sync.alegra.resources import identification_forms
from sync.dominican import digits
from tests.alegra.conftest import MakeClient, json_response

pytestmark = pytest.mark.anyio
BG = Priority.BACKGROUND


def contacts_server(contacts: list[dict[str, Any]], *, ignore_dashes: bool) -> Any:
    """GET /contacts filtered on `identification`: exactly, or (a kinder Alegra) by its digits."""

    def handle(request: Request) -> Response:
        wanted = request.args["identification"]
        found = [
            c
            for c in contacts
            if c["identification"] == wanted
            or (ignore_dashes and digits(c["identification"]) == digits(wanted))
        ]
        start, limit = int(request.args["start"]), int(request.args["limit"])
        return json_response(found[start : start + limit])

    return handle


def test_identification_forms_are_the_digits_and_the_printed_form() -> None:
    """An RNC is also searched as 1-31-24679-6 and a cédula as 001-1391820-5."""
    assert identification_forms("131246796") == ["131246796", "1-31-24679-6"]
    assert identification_forms("001-1391820-5") == ["00113918205", "001-1391820-5"]
    assert identification_forms("12345") == ["12345"]
    assert identification_forms("") == []


async def test_a_contact_typed_with_dashes_is_found(
    httpserver: HTTPServer, make_client: MakeClient
) -> None:
    """An exact-match search for the digits misses `1-31-24679-6`; the printed form finds it."""
    contacts = [
        {"id": "101", "identification": "1-31-24679-6", "name": "Ferretería Ochoa"},
        {"id": "102", "identification": "131246796", "name": "Ferretería Ochoa SRL"},
        {"id": "103", "identification": "101010101", "name": "Otra"},
    ]
    httpserver.expect_request("/api/v1/contacts").respond_with_handler(
        contacts_server(contacts, ignore_dashes=False)
    )
    found = await resources.find_contacts_by_identification(make_client(), "131246796", priority=BG)
    assert sorted(c["id"] for c in found) == ["101", "102"]


async def test_a_contact_found_by_both_forms_is_returned_once(
    httpserver: HTTPServer, make_client: MakeClient
) -> None:
    """When both searches return the same contact, it appears once."""
    contacts = [{"id": "7b1e0c2a-0000-4000-8000-000000000001", "identification": "001-1391820-5"}]
    httpserver.expect_request("/api/v1/contacts").respond_with_handler(
        contacts_server(contacts, ignore_dashes=True)
    )
    found = await resources.find_contacts_by_identification(
        make_client(), "00113918205", priority=BG
    )
    assert found == contacts
    assert len(httpserver.log) == 2


async def test_an_empty_tax_id_searches_nothing(
    httpserver: HTTPServer, make_client: MakeClient
) -> None:
    """No digits, no request: an empty filter would list every contact."""
    assert await resources.find_contacts_by_identification(make_client(), "--", priority=BG) == []
    assert httpserver.log == []


async def test_a_missing_contact_is_none(httpserver: HTTPServer, make_client: MakeClient) -> None:
    """A 404 on GET /contacts/{id} means no such contact."""
    httpserver.expect_request("/api/v1/contacts/55").respond_with_json({"message": "no"}, 404)
    assert await resources.get_contact(make_client(), "55", priority=BG) is None


async def test_an_id_that_is_not_an_alegra_id_is_never_sent(
    httpserver: HTTPServer, make_client: MakeClient
) -> None:
    """An id from an unsigned webhook cannot walk the path elsewhere (`../bills`)."""
    assert await resources.get_contact(make_client(), "../bills", priority=BG) is None
    assert await resources.get_bill(make_client(), "1/attachment", priority=BG) is None
    assert httpserver.log == []


async def test_a_contact_is_created_and_updated(
    httpserver: HTTPServer, make_client: MakeClient
) -> None:
    """POST /contacts and PUT /contacts/{id} send the payload and return Alegra's record."""
    payload = {"name": "Ferretería Ochoa", "type": ["provider"]}
    httpserver.expect_request("/api/v1/contacts", method="POST", json=payload).respond_with_json(
        {"id": "101", **payload}, 201
    )
    update = {"type": ["client", "provider"]}
    httpserver.expect_request("/api/v1/contacts/101", method="PUT", json=update).respond_with_json(
        {"id": "101", **payload, **update}
    )
    client = make_client()
    assert (await resources.create_contact(client, payload, priority=BG))["id"] == "101"
    updated = await resources.update_contact(client, "101", update, priority=BG)
    assert updated["type"] == ["client", "provider"]


async def test_contacts_are_iterated_with_their_total(
    httpserver: HTTPServer, make_client: MakeClient
) -> None:
    """The contacts backfill asks for the metadata form, so pages carry the total."""
    rows = [{"id": str(n)} for n in range(35)]

    def page(request: Request) -> Response:
        start = int(request.args["start"])
        return json_response({"metadata": {"total": 35}, "data": rows[start : start + 30]})

    httpserver.expect_request(
        "/api/v1/contacts", query_string={"metadata": "true", "start": "30", "limit": "30"}
    ).respond_with_handler(page)
    pages = [p async for p in resources.iter_contacts(make_client(), 30, priority=BG)]
    assert [(p.start, len(p.rows), p.total) for p in pages] == [(30, 5, 35)]


async def test_categories_come_as_a_complete_plain_list(
    httpserver: HTTPServer, make_client: MakeClient
) -> None:
    """If /categories ignores paging and sends all 45 accounts at once, one request is enough."""
    accounts = [{"id": str(n), "type": "expense"} for n in range(45)]
    httpserver.expect_request(
        "/api/v1/categories",
        query_string={"format": "plain", "type": "expense", "start": "0", "limit": "30"},
    ).respond_with_json(accounts)
    found = await resources.list_categories(make_client(), "expense", priority=BG)
    assert found == accounts
    assert len(httpserver.log) == 1


async def test_a_page_repeated_by_an_endpoint_that_ignores_start_is_not_taken_as_complete(
    httpserver: HTTPServer, make_client: MakeClient
) -> None:
    """The same 30 accounts sent again for start=30 mean the rest cannot be listed: the listing
    raises (a poll then deletes nothing) instead of passing 30 rows off as the whole chart."""
    accounts = [{"id": str(n)} for n in range(30)]
    httpserver.expect_request("/api/v1/categories").respond_with_json(accounts)
    with pytest.raises(Unavailable, match="repeated a page"):
        await resources.list_categories(make_client(), priority=BG)
    assert len(httpserver.log) == 2


async def test_categories_in_pages_of_thirty_are_all_collected(
    httpserver: HTTPServer, make_client: MakeClient
) -> None:
    """If /categories pages like the other lists, every page is read."""
    accounts = [{"id": str(n)} for n in range(40)]

    def page(request: Request) -> Response:
        start = int(request.args["start"])
        return json_response(accounts[start : start + 30])

    httpserver.expect_request("/api/v1/categories").respond_with_handler(page)
    assert await resources.list_categories(make_client(), priority=BG) == accounts


async def test_a_bill_is_created_and_looked_up_by_provider_and_date(
    httpserver: HTTPServer, make_client: MakeClient
) -> None:
    """create_bill posts the payload; find_bills filters on client_id and date."""
    payload = {"date": "2025-01-31", "dueDate": "2025-01-31", "provider": {"id": "101"}}
    httpserver.expect_request("/api/v1/bills", method="POST", json=payload).respond_with_json(
        {"id": "900", **payload}, 201
    )
    httpserver.expect_request(
        "/api/v1/bills",
        method="GET",
        query_string={"client_id": "101", "date": "2025-01-31", "start": "0", "limit": "30"},
    ).respond_with_json([{"id": "900", **payload}])
    client = make_client()
    created = await resources.create_bill(client, payload, priority=Priority.RECEIPT)
    found = await resources.find_bills(client, "101", "2025-01-31", priority=Priority.RECEIPT)
    assert [b["id"] for b in found] == [created["id"]]


async def test_a_receipt_file_is_attached_as_the_single_file_field(
    httpserver: HTTPServer, make_client: MakeClient
) -> None:
    """The attachment is multipart with one field named `file`, name and type preserved."""
    seen: dict[str, Any] = {}

    def attach(request: Request) -> Response:
        upload = request.files["file"]
        seen.update(
            fields=list(request.files),
            name=upload.filename,
            type=upload.mimetype,
            data=upload.read(),
        )
        return json_response({"name": upload.filename, "url": "https://files.test/r.pdf"})

    httpserver.expect_request("/api/v1/bills/900/attachment", method="POST").respond_with_handler(
        attach
    )
    answer = await resources.attach_to_bill(
        make_client(),
        "900",
        "recibo.pdf",
        "application/pdf",
        b"%PDF-1.4",
        priority=Priority.RECEIPT,
    )
    assert answer == {"name": "recibo.pdf", "url": "https://files.test/r.pdf"}
    assert seen == {
        "fields": ["file"],
        "name": "recibo.pdf",
        "type": "application/pdf",
        "data": b"%PDF-1.4",
    }


async def test_webhook_subscriptions_are_listed_created_and_deleted(
    httpserver: HTTPServer, make_client: MakeClient
) -> None:
    """Listed under `subscriptions`, created under `subscription`; deleting a gone one is fine."""
    url = "https://sync.example.com/webhooks/alegra/tok"
    sub = {"id": "3", "event": "new-client", "url": url}
    httpserver.expect_request("/api/v1/webhooks/subscriptions", method="GET").respond_with_json(
        {"subscriptions": [sub]}
    )
    httpserver.expect_request(
        "/api/v1/webhooks/subscriptions", method="POST", json={"event": "new-client", "url": url}
    ).respond_with_json({"subscription": sub}, 201)
    httpserver.expect_request(
        "/api/v1/webhooks/subscriptions/3", method="DELETE"
    ).respond_with_data(json.dumps({"message": "not found"}), 404)
    client = make_client()
    assert await resources.list_subscriptions(client, priority=BG) == [sub]
    assert await resources.create_subscription(client, "new-client", url, priority=BG) == sub
    await resources.delete_subscription(client, "3", priority=BG)  # already gone: no error


async def test_taxes_are_listed(httpserver: HTTPServer, make_client: MakeClient) -> None:
    """GET /taxes returns every tax (ITBIS 18%, 16%, exempt)."""
    taxes = [{"id": "1", "percentage": "18.00"}, {"id": "2", "percentage": "16.00"}]
    httpserver.expect_request("/api/v1/taxes").respond_with_json(taxes)
    assert await resources.list_taxes(make_client(), priority=BG) == taxes
