"""`Alegra-Company`: which company a request is about, and what a key may reach
(receiver/company.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from receiver import admin, inspect, receipts
from sync.store import ops_queries
from sync.store.receipts import IdempotencyConflict
from tests.companies_web.conftest import HEADER, World


@pytest.mark.parametrize("value", [
    "ACME-SA", "acme sa", "acme_sa", "acme.sa", "", "a" * 64, "default;drop", "../default",
])
def test_a_malformed_company_is_a_400_naming_the_header(world: World, value: str) -> None:
    """A value that is not a company id (1-63 lowercase letters, digits, dashes) is refused
    with 400 `invalid_company`, `field` naming the header, and nothing is stored."""
    for response in (world.post_receipt("both", value), world.get("/v1/cache/taxes",
                                                                  company=value)):
        assert response.status_code == 400, value
        error = response.json()["error"]
        assert (error["code"], error["field"]) == ("invalid_company", HEADER)
        assert HEADER in error["message"]
    assert world.sql("SELECT COUNT(*) FROM receipts") == [(0,)]


def test_the_header_sent_twice_is_a_400(world: World) -> None:
    """Two `Alegra-Company` headers are one too many, even when both name a granted company."""
    response = world.client.get("/v1/cache/taxes", headers=[
        ("Authorization", f"Bearer {world.keys['ops']}"), (HEADER, "acme-sa"),
        (HEADER, "globex-sa")])
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_company"


def test_a_missing_company_is_a_400_when_the_key_reaches_several(world: World) -> None:
    """Without the header, a key granted two companies (or an admin key, with several live
    companies) gets 400 `missing_company` naming the header; nothing is stored."""
    for response in (world.post_receipt("both"), world.get("/v1/cache/taxes"),
                     world.get("/v1/receipts"), world.get("/v1/events")):
        assert response.status_code == 400
        error = response.json()["error"]
        assert (error["code"], error["field"]) == ("missing_company", HEADER)
        assert HEADER in error["message"]
    assert world.sql("SELECT COUNT(*) FROM receipts") == [(0,)]


def test_unknown_not_granted_and_removed_companies_get_the_same_404(world: World) -> None:
    """A company that does not exist, one the key is not granted, and one removed (though
    granted) are one and the same 404 answer: ids cannot be probed."""
    answers = [world.post_receipt("alpha", company)
               for company in ("no-such-company", "globex-sa", "gone", "default")]
    assert {a.status_code for a in answers} == {404}
    assert len({a.text for a in answers}) == 1
    error = answers[0].json()["error"]
    assert (error["code"], error["field"]) == ("unknown_company", HEADER)
    assert world.sql("SELECT COUNT(*) FROM receipts") == [(0,)]


def test_the_admin_reaches_every_live_company_and_no_removed_one(world: World) -> None:
    """An admin key reads any live company's cache, never a removed one's (404)."""
    for company in ("default", "acme-sa", "globex-sa"):
        assert world.get("/v1/cache/taxes", company=company).status_code == 200, company
    removed = world.get("/v1/cache/taxes", company="gone")
    assert removed.status_code == 404
    assert removed.json()["error"]["code"] == "unknown_company"


def test_a_partner_key_on_an_admin_endpoint_is_still_403(world: World) -> None:
    """The company check comes after the key's: a partner key on a cache endpoint is 403
    whatever the header says."""
    for company in ("acme-sa", "no-such-company", "BAD"):
        assert world.get("/v1/cache/taxes", "both", company).status_code == 403


def test_a_revoked_grant_counts_from_the_next_request(world: World) -> None:
    """What a key reaches is read for each request: once the grant is revoked, the very next
    request for that company is the 404 of an unknown one."""
    receipt_id = world.seed_receipt("rcp_acme0000000000000000001", "alpha", "acme-sa")
    assert world.client.get(f"/v1/receipts/{receipt_id}",
                            headers=world.headers("alpha")).status_code == 200
    world.revoke("alpha", "acme-sa")
    again = world.client.get(f"/v1/receipts/{receipt_id}", headers=world.headers("alpha"))
    assert again.status_code == 404
    assert world.post_receipt("alpha", "acme-sa").json()["error"]["code"] == "unknown_company"


Call = Callable[[World], httpx.Response]
# (module, store function it calls, what the spy answers, the request)
ENDPOINTS: dict[str, tuple[Any, str, Any, Call]] = {
    "POST /v1/receipts": (receipts, "insert_receipt", IdempotencyConflict("rcp_x"),
                          lambda w: w.post_receipt("both", "acme-sa")),
    "GET /v1/cache/contacts": (ops_queries, "contacts_page", [],
                               lambda w: w.get("/v1/cache/contacts", company="acme-sa")),
    "GET /v1/cache/contacts/{id}": (inspect, "get_cached_contact", None,
                                    lambda w: w.get("/v1/cache/contacts/7", company="acme-sa")),
    "GET /v1/cache/accounts": (ops_queries, "all_accounts", [],
                               lambda w: w.get("/v1/cache/accounts", company="acme-sa")),
    "GET /v1/cache/taxes": (ops_queries, "all_taxes", [],
                            lambda w: w.get("/v1/cache/taxes", company="acme-sa")),
    "GET /v1/cache/status": (inspect, "cache_status", {},
                             lambda w: w.get("/v1/cache/status", company="acme-sa")),
    "GET /v1/events": (ops_queries, "events_page", [],
                       lambda w: w.get("/v1/events", company="acme-sa")),
    "POST /v1/events/{id}/replay": (ops_queries, "replay_event", False, lambda w: w.client.post(
        "/v1/events/1/replay", headers=w.headers("ops", "acme-sa"))),
    "GET /v1/receipts": (admin, "list_receipts", [],
                         lambda w: w.get("/v1/receipts", company="acme-sa")),
}


@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS))
def test_each_per_company_endpoint_hands_the_store_the_header_company(
    world: World, monkeypatch: pytest.MonkeyPatch, endpoint: str
) -> None:
    """The store function behind each endpoint gets a handle scoped to the header's company
    (so the store's `WHERE company_id = db.company` reads that company's rows only)."""
    module, name, answer, call = ENDPOINTS[endpoint]
    seen: list[str] = []

    async def spy(db: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(db.company)
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(module, name, spy)
    response = call(world)
    assert response.status_code < 500, response.text
    assert seen == ["acme-sa"]


def test_without_the_header_the_only_company_a_key_reaches_is_used(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key granted one live company (`alpha`: acme-sa, and the removed gone) needs no
    header: its receipts go to that company."""
    seen: list[str] = []

    async def spy(db: Any, **_: Any) -> Any:
        seen.append(db.company)
        raise IdempotencyConflict("rcp_x")

    monkeypatch.setattr(receipts, "insert_receipt", spy)
    assert world.post_receipt("alpha").status_code == 422
    assert world.post_receipt("solo").status_code == 422
    assert seen == ["acme-sa", "default"]
