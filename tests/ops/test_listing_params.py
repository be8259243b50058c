"""Every listing parameter is checked: a value the endpoint cannot use is a 400 naming the
parameter, never an empty 200 that reads as "nothing there"."""

from __future__ import annotations

import pytest

from receiver import query
from tests.ops.conftest import OpsApi

BAD = [
    ("/v1/cache/contacts", {"tax_id": "123"}, "tax_id"),
    ("/v1/cache/contacts", {"tax_id": "1312467961234"}, "tax_id"),
    ("/v1/cache/contacts", {"tax_id": "131-24679-6x"}, "tax_id"),
    ("/v1/cache/contacts", {"type": "vendor"}, "type"),
    ("/v1/cache/contacts", {"status": "deleted"}, "status"),
    ("/v1/cache/contacts", {"cursor": query.encode_cursor([1, 2])}, "cursor"),
    ("/v1/cache/contacts", {"limit": "0"}, "limit"),
    ("/v1/cache/accounts", {"view": "graph"}, "view"),
    ("/v1/cache/accounts", {"include_deleted": "maybe"}, "include_deleted"),
    ("/v1/cache/taxes", {"include_deleted": "2"}, "include_deleted"),
    ("/v1/events", {"state": "done"}, "state"),
    ("/v1/events", {"cursor": query.encode_cursor(["7"])}, "cursor"),
    ("/v1/events", {"limit": "-1"}, "limit"),
    ("/v1/receipts", {"status": "ok"}, "status"),
    ("/v1/receipts", {"date_from": "2024-02-30"}, "date_from"),
    ("/v1/receipts", {"date_to": "yesterday"}, "date_to"),
    ("/v1/receipts", {"cursor": "bm90LWEtY3Vyc29y"}, "cursor"),
    ("/v1/receipts", {"partner": "nobody"}, "partner"),
]


@pytest.mark.parametrize(("path", "params", "field"), BAD)
def test_a_value_the_endpoint_cannot_use_is_400_naming_the_parameter(
    ops: OpsApi, path: str, params: dict[str, str], field: str
) -> None:
    """400 `invalid_parameter` with the parameter as `field` and a message saying what fits."""
    response = ops.get(path, **params)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["code"], error["field"]) == ("invalid_parameter", field)
    assert error["message"].startswith(f"{field}:")


def test_a_partner_is_found_by_name_or_id(ops: OpsApi) -> None:
    """`partner` takes a partner's name or its id; a known partner without receipts is empty."""
    assert ops.get("/v1/receipts", partner="globex").json() == {"data": [], "next_cursor": None}
