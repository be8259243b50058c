"""Alegra write bodies built from receipts (pure), and reading our marks back from bills."""

from __future__ import annotations

from decimal import Decimal

from sync.alegra import payloads
from sync.alegra.payloads import BillLine
from sync.dominican import TaxId
from sync.learned import write_shape
from sync.receipt_model import parse_submission
from tests.flow.conftest import receipt_body


def _receipt(**changes: object) -> object:
    return parse_submission(receipt_body(**changes), max_attachment_bytes=1024).receipt


LINE = BillLine("55", "1", Decimal("100.00"), Decimal("2"), "Tornillos")


def test_contact_payload_sends_identification_as_an_object() -> None:
    """A new supplier with an RNC is a provider whose identification is {type, number}."""
    body = payloads.contact_payload("Ochoa SRL", TaxId("131246796", "RNC"), "a@b.do", "809")

    assert body == {
        "name": "Ochoa SRL", "type": ["provider"], "email": "a@b.do", "phonePrimary": "809",
        "identification": {"type": "RNC", "number": "131246796"},
    }


def test_cedula_uses_the_ced_type_code() -> None:
    """An 11-digit cédula is sent with the CED identification type."""
    body = payloads.contact_payload("Juan Pérez", TaxId("00113918205", "CEDULA"))

    assert body["identification"] == {"type": "CED", "number": "00113918205"}


def test_supplier_without_tax_id_has_no_identification() -> None:
    """A supplier known only by name is created without an identification."""
    assert "identification" not in payloads.contact_payload("Colmado", None)


def test_client_becomes_client_and_provider() -> None:
    """Making a client a supplier keeps its client type."""
    assert payloads.make_provider_payload(["client"]) == {"type": ["client", "provider"]}
    assert payloads.make_provider_payload([]) == {"type": ["provider"]}


def test_bill_payload_has_lines_marker_and_ncf_in_one_place() -> None:
    """The bill names the provider, posts lines to accounts with taxes, carries NCF and marker."""
    body = payloads.bill_payload(_receipt(), "rcp_1", "7", [LINE])  # type: ignore[arg-type]

    assert body == {
        "date": "2024-05-01", "dueDate": "2024-05-01", "provider": {"id": "7"},
        "purchases": {"categories": [{"id": "55", "price": 100, "quantity": 2,
                                      "observations": "Tornillos", "tax": [{"id": "1"}]}]},
        "observations": "alegra-sync receipt rcp_1",
        "numberTemplate": {"number": "B0100000001"},
    }


def test_untaxed_line_sends_no_tax_and_cents_stay_exact() -> None:
    """A line without tax has no `tax`; 10.10 is sent as the number 10.1, not 10.099…"""
    line = BillLine("55", None, Decimal("10.10"), Decimal("1"), "Agua")
    body = payloads.bill_payload(_receipt(ncf=None), "rcp_1", "7", [line])  # type: ignore[arg-type]

    [sent] = body["purchases"]["categories"]
    assert "tax" not in sent
    assert repr(sent["price"]) == "10.1"
    assert "numberTemplate" not in body


def test_foreign_currency_bill_carries_code_and_rate() -> None:
    """A USD receipt's bill states the currency and the exchange rate."""
    receipt = _receipt(currency="USD", exchange_rate="58.75")
    body = payloads.bill_payload(receipt, "rcp_1", "7", [LINE])  # type: ignore[arg-type]

    assert body["currency"] == {"code": "USD", "exchangeRate": 58.75}


def test_bill_number_reads_template_or_root_number() -> None:
    """The NCF is read from numberTemplate.number, or a root number, compact and upper case."""
    assert payloads.bill_number({"numberTemplate": {"number": "b01-00000001"}}) == "B0100000001"
    assert payloads.bill_number({"number": "B0100000002"}) == "B0100000002"
    assert payloads.bill_number({"numberTemplate": None}) is None


def test_marker_identifies_our_bill_only() -> None:
    """A bill is ours when its observations carry this receipt's marker."""
    bill = {"observations": "alegra-sync receipt rcp_1"}

    assert payloads.bill_has_marker(bill, "rcp_1")
    assert not payloads.bill_has_marker(bill, "rcp_2")
    assert not payloads.bill_has_marker({"observations": "alegra-sync receipt rcp_10"}, "rcp_1")
    assert not payloads.bill_has_marker({}, "rcp_1")


def test_a_company_s_learned_codes_and_ncf_field_shape_its_writes() -> None:
    """What `doctor` learned for a company replaces the built-in guesses in its bodies."""
    shape = write_shape({"identification_type.CEDULA": "CE",
                         "ncf_field": "numberTemplate.fullNumber"})
    contact = payloads.contact_payload("Juan Pérez", TaxId("00113918205", "CEDULA"),
                                       id_types=shape.id_types)
    assert contact["identification"] == {"type": "CE", "number": "00113918205"}
    rnc = payloads.contact_payload("Ochoa", TaxId("131246796", "RNC"), id_types=shape.id_types)
    assert rnc["identification"]["type"] == "RNC"  # not learned: the built-in guess
    bill = payloads.bill_payload(_receipt(), "rcp_1", "7", [LINE],  # type: ignore[arg-type]
                                 ncf_field=shape.ncf_field)
    assert bill["numberTemplate"] == {"fullNumber": "B0100000001"}
    root = payloads.bill_payload(_receipt(), "rcp_1", "7", [LINE],  # type: ignore[arg-type]
                                 ncf_field=("billNumber",))
    assert root["billNumber"] == "B0100000001"
    assert "numberTemplate" not in root
