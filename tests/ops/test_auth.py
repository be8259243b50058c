"""Every operator endpoint: 401 without a key, 403 with a partner key, served with an admin key."""

from __future__ import annotations

import pytest

from tests.ops.conftest import OpsApi

ADMIN_ENDPOINTS = [
    ("GET", "/v1/cache/contacts"),
    ("GET", "/v1/cache/contacts/42"),
    ("GET", "/v1/cache/accounts"),
    ("GET", "/v1/cache/taxes"),
    ("GET", "/v1/cache/status"),
    ("GET", "/v1/events"),
    ("POST", "/v1/events/1/replay"),
    ("GET", "/v1/receipts"),
    ("POST", "/v1/receipts/rcp_missing/retry"),
]


def _call(ops: OpsApi, method: str, path: str, key: str | None) -> int:
    if method == "GET":
        return ops.get(path, key=key).status_code
    return ops.post(path, key=key).status_code


@pytest.mark.parametrize(("method", "path"), ADMIN_ENDPOINTS)
def test_without_a_key_is_401(ops: OpsApi, method: str, path: str) -> None:
    """No Authorization header: 401 with the Bearer challenge and the one error shape."""
    response = ops.client.request(method, path)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["error"]["code"] == "unauthorized"


@pytest.mark.parametrize(("method", "path"), ADMIN_ENDPOINTS)
def test_unknown_key_is_401(ops: OpsApi, method: str, path: str) -> None:
    """A key nobody holds is refused like no key."""
    assert _call(ops, method, path, "as_not-a-real-key") == 401


@pytest.mark.parametrize(("method", "path"), ADMIN_ENDPOINTS)
def test_partner_key_is_403(ops: OpsApi, method: str, path: str) -> None:
    """A partner's key cannot read the cache or repair anything."""
    response = ops.client.request(method, path, headers=ops.auth("acme"))
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"


@pytest.mark.parametrize(("method", "path"), ADMIN_ENDPOINTS)
def test_admin_key_is_served(ops: OpsApi, method: str, path: str) -> None:
    """An admin key gets past authorisation (200, or 404 for ids that do not exist)."""
    expected = 404 if path.endswith(("/42", "/replay", "/retry")) else 200
    assert _call(ops, method, path, "ops") == expected


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/openapi.json"])
def test_probes_and_metrics_need_no_key(ops: OpsApi, path: str) -> None:
    """Load balancers and Prometheus call these without credentials (with a worker running:
    its heartbeat makes /readyz ready)."""
    ops.store.heartbeat()
    assert ops.client.get(path).status_code == 200


def test_partner_post_receipts_and_admin_get_receipts_share_a_path(ops: OpsApi) -> None:
    """POST /v1/receipts stays the partner API while GET /v1/receipts is the admin listing."""
    listing = ops.get("/v1/receipts", key="acme")
    assert listing.status_code == 403
    posted = ops.post("/v1/receipts", key="acme", json={}, headers={"Idempotency-Key": "k"})
    assert posted.status_code == 422  # the partner API validated it: the route is the receipt API
    assert ops.client.request("DELETE", "/v1/receipts").status_code == 405
