"""/openapi.json describes every route the app serves, with the responses operators rely on."""

from __future__ import annotations

from starlette.routing import Route

from receiver.app import create_app
from tests.ops.conftest import OpsApi


def test_every_route_and_method_is_in_the_spec(ops: OpsApi) -> None:
    """No endpoint is served without being documented, and nothing documented is missing."""
    spec = ops.client.get("/openapi.json").json()
    served = {
        (route.path, method.lower())
        for route in create_app(ops.settings).routes if isinstance(route, Route)
        for method in (route.methods or ()) if method != "HEAD"
    }
    documented = {(path, method) for path, ops_ in spec["paths"].items() for method in ops_}
    assert served == documented


def test_admin_operations_document_401_and_403(ops: OpsApi) -> None:
    """Each admin-only operation says what a missing key and a partner key get."""
    spec = ops.client.get("/openapi.json").json()
    admin_ops = [op for item in spec["paths"].values() for op in item.values()
                 if op.get("x-admin-only")]
    assert len(admin_ops) == 13  # events 2, receipts 2, cache 5, companies 4
    for op in admin_ops:
        assert {"401", "403"} <= set(op["responses"]), op["operationId"]
