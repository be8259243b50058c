"""Companies stay apart through the API: a partner granted one company can neither read nor
write another's receipts, and every listing and cache read shows the header's company only;
the admin key reaches them all."""

from __future__ import annotations

from tests.companies_web.conftest import HEADER, World
from tests.receipts_api.conftest import receipt_body

ACME_RECEIPT = "rcp_acme0000000000000000001"
GLOBEX_RECEIPT = "rcp_globex00000000000000001"


def test_a_partner_cannot_write_to_a_company_it_is_not_granted(world: World) -> None:
    """`alpha` (granted acme-sa) posting to globex-sa gets the unknown company's 404, and no
    row is written."""
    response = world.post_receipt("alpha", "globex-sa")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_company"
    assert world.sql("SELECT COUNT(*) FROM receipts") == [(0,)]


def test_a_receipt_is_stored_in_the_header_company(world: World) -> None:
    """A receipt posted with `Alegra-Company: globex-sa` belongs to globex-sa."""
    response = world.post_receipt("both", "globex-sa")
    assert response.status_code == 202, response.text
    receipt_id = response.json()["id"]
    assert world.sql("SELECT company_id FROM receipts WHERE id = ?",
                     (receipt_id,)) == [("globex-sa",)]


def test_the_same_idempotency_key_in_two_companies_makes_two_receipts(world: World) -> None:
    """Idempotency keys are scoped per partner and company: one key used in acme-sa and in
    globex-sa stores two receipts, and a replay in each answers its own."""
    acme = world.post_receipt("both", "acme-sa", idem="same-key")
    globex = world.post_receipt("both", "globex-sa", idem="same-key")
    assert (acme.status_code, globex.status_code) == (202, 202), globex.text
    assert acme.json()["id"] != globex.json()["id"]
    replay = world.post_receipt("both", "globex-sa", idem="same-key")
    assert replay.json()["id"] == globex.json()["id"]
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert world.sql("SELECT company_id, COUNT(*) FROM receipts GROUP BY company_id"
                     " ORDER BY company_id") == [("acme-sa", 1), ("globex-sa", 1)]


def test_the_same_key_with_another_body_in_another_company_is_not_a_conflict(
    world: World
) -> None:
    """A key used in acme-sa may carry a different receipt in globex-sa (no 422)."""
    assert world.post_receipt("both", "acme-sa", idem="k").status_code == 202
    other = world.post_receipt("both", "globex-sa", idem="k", body=receipt_body(ncf="B0100000002"))
    assert other.status_code == 202, other.text


def test_a_receipt_is_read_by_id_in_any_granted_company_only(world: World) -> None:
    """`GET /v1/receipts/{id}` finds a receipt in whichever company holds it when the key is
    granted that company; in a company no longer granted it is the unknown receipt's 404."""
    world.seed_receipt(ACME_RECEIPT, "both", "acme-sa")
    world.seed_receipt(GLOBEX_RECEIPT, "both", "globex-sa")
    unknown = world.client.get("/v1/receipts/rcp_nope", headers=world.headers("both"))
    for receipt_id in (ACME_RECEIPT, GLOBEX_RECEIPT):
        answer = world.client.get(f"/v1/receipts/{receipt_id}", headers=world.headers("both"))
        assert answer.status_code == 200
        assert answer.json()["id"] == receipt_id
    world.revoke("both", "globex-sa")
    hidden = world.client.get(f"/v1/receipts/{GLOBEX_RECEIPT}", headers=world.headers("both"))
    assert (hidden.status_code, hidden.json()) == (404, unknown.json())


def test_a_header_naming_another_company_hides_the_receipt(world: World) -> None:
    """With `Alegra-Company`, a receipt of another company (even a granted one) is 404."""
    world.seed_receipt(GLOBEX_RECEIPT, "both", "globex-sa")
    wrong = world.client.get(f"/v1/receipts/{GLOBEX_RECEIPT}",
                             headers=world.headers("both", "acme-sa"))
    right = world.client.get(f"/v1/receipts/{GLOBEX_RECEIPT}",
                             headers=world.headers("both", "globex-sa"))
    assert (wrong.status_code, right.status_code) == (404, 200)


def test_a_partner_granted_one_company_cannot_read_anothers_receipt(world: World) -> None:
    """`alpha` (acme-sa) gets 404 for its own receipt left in globex-sa, without or with the
    header; the admin key reads it without a header."""
    world.seed_receipt(GLOBEX_RECEIPT, "alpha", "globex-sa")
    for company in (None, "globex-sa", "acme-sa"):
        answer = world.client.get(f"/v1/receipts/{GLOBEX_RECEIPT}",
                                  headers=world.headers("alpha", company))
        assert answer.status_code == 404, company
    assert world.client.get(f"/v1/receipts/{GLOBEX_RECEIPT}",
                            headers=world.headers("ops")).status_code == 200


def test_a_removed_companys_receipts_stay_readable_by_id(world: World) -> None:
    """`alpha` is still granted the removed company gone: its receipt there is readable by id,
    though nothing new can be posted to it."""
    world.seed_receipt("rcp_gone00000000000000000001", "alpha", "gone")
    answer = world.client.get("/v1/receipts/rcp_gone00000000000000000001",
                              headers=world.headers("alpha"))
    assert answer.status_code == 200
    assert world.post_receipt("alpha", "gone").status_code == 404


def test_the_receipt_listing_shows_the_header_company_only(world: World) -> None:
    """The admin's `GET /v1/receipts` lists the header company's receipts, no other's."""
    world.seed_receipt(ACME_RECEIPT, "both", "acme-sa")
    world.seed_receipt(GLOBEX_RECEIPT, "both", "globex-sa")
    for company, receipt_id in (("acme-sa", ACME_RECEIPT), ("globex-sa", GLOBEX_RECEIPT)):
        listed = world.get("/v1/receipts", company=company)
        assert [r["id"] for r in listed.json()["data"]] == [receipt_id], company


def test_retry_finds_the_receipt_in_its_own_company(world: World) -> None:
    """The admin retries a failed receipt of globex-sa by id, with no header (or its own);
    with another company's header it is 404."""
    world.seed_receipt(GLOBEX_RECEIPT, "both", "globex-sa", status="failed")
    path = f"/v1/receipts/{GLOBEX_RECEIPT}/retry"
    assert world.client.post(path, headers=world.headers("ops", "acme-sa")).status_code == 404
    assert world.client.post(path, headers=world.headers("ops")).status_code == 202
    assert world.sql("SELECT status FROM receipts WHERE id = ?",
                     (GLOBEX_RECEIPT,)) == [("queued",)]


def test_cache_endpoints_show_the_header_company_only(world: World) -> None:
    """Contacts of acme-sa are listed and read under acme-sa only; globex-sa has its own
    contact with the same Alegra id."""
    world.seed_contact("7", "Ochoa Acme", "acme-sa")
    world.seed_contact("7", "Ochoa Globex", "globex-sa")
    world.seed_contact("8", "Solo Globex", "globex-sa")
    acme = world.get("/v1/cache/contacts", company="acme-sa").json()["data"]
    assert [c["name"] for c in acme] == ["Ochoa Acme"]
    assert world.get("/v1/cache/contacts/7", company="globex-sa").json()["name"] == "Ochoa Globex"
    assert world.get("/v1/cache/contacts/8", company="acme-sa").status_code == 404
    assert world.get("/v1/cache/contacts", company="default").json()["data"] == []


def test_inbox_events_are_listed_and_replayed_per_company(world: World) -> None:
    """`GET /v1/events` lists the header company's deliveries; another company's event
    cannot be replayed under it (404)."""
    acme_event = world.seed_event("7", "acme-sa")
    globex_event = world.seed_event("8", "globex-sa")
    listed = world.get("/v1/events", company="acme-sa").json()["data"]
    assert [e["id"] for e in listed] == [acme_event]
    replay = world.client.post(f"/v1/events/{globex_event}/replay",
                               headers=world.headers("ops", "acme-sa"))
    assert replay.status_code == 404


def test_bad_or_foreign_company_values_change_nothing(world: World) -> None:
    """Malformed, unknown and foreign `Alegra-Company` values on every write leave the
    database as it was."""
    world.seed_receipt(GLOBEX_RECEIPT, "both", "globex-sa", status="failed")
    before = world.sql("SELECT id, status, company_id FROM receipts ORDER BY id")
    for company in ("BAD", "no-such", "globex-sa"):
        world.post_receipt("alpha", company)
        world.client.post(f"/v1/receipts/{GLOBEX_RECEIPT}/retry",
                          headers={**world.headers("ops"), HEADER: company.replace(
                              "globex-sa", "acme-sa")})
    assert world.sql("SELECT id, status, company_id FROM receipts ORDER BY id") == before
