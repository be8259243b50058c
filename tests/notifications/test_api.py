"""`/v1/webhook-endpoints`: a partner manages its own endpoints with its own key; bad
registrations are 422 naming the field with nothing stored; another partner's endpoint is a 404;
the secret is answered once and stored only encrypted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook
from starlette.testclient import TestClient

from receiver.app import create_app
from tests.notifications.conftest import CREDENTIALS_KEY
from tests.ops.conftest import OpsApi, Store, _partners, make_settings

PATH = "/v1/webhook-endpoints"


def _api(tmp_path: Path, **env: str) -> Iterator[OpsApi]:
    settings = make_settings(tmp_path, **env)
    store = Store(settings.database_path)
    keys = store.run(_partners)
    with TestClient(create_app(settings)) as client:
        yield OpsApi(client, store, keys, settings)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[OpsApi]:
    """Loopback allowed (the test's endpoints are local); partners acme, globex, admin ops."""
    yield from _api(tmp_path, CREDENTIALS_KEY=CREDENTIALS_KEY,
                    PARTNER_WEBHOOKS_ALLOW_PRIVATE="true")


@pytest.fixture
def strict(tmp_path: Path) -> Iterator[OpsApi]:
    """The default rules: https and public addresses only."""
    yield from _api(tmp_path, CREDENTIALS_KEY=CREDENTIALS_KEY)


def _register(api: OpsApi, key: str = "acme", **body: Any) -> httpx.Response:
    return api.post(PATH, key=key, json={"url": "http://127.0.0.1:9/hook", **body})


def _stored(api: OpsApi) -> int:
    return int(api.store.sql("SELECT COUNT(*) FROM webhook_endpoints")[0][0])


def test_register_answers_201_with_the_secret_once(api: OpsApi) -> None:
    """Register answers 201 with the secret once."""
    response = _register(api, events=["receipt.completed", "bill.voided"])
    assert response.status_code == 201, response.text
    made = response.json()
    assert made["secret"].startswith("whsec_")
    Webhook(made["secret"])  # a secret the partner's library takes
    assert response.headers["location"] == f"{PATH}/{made['id']}"
    assert made["events"] == ["bill.voided", "receipt.completed"]
    assert made["state"] == "enabled"
    again = api.get(f"{PATH}/{made['id']}", key="acme").json()
    assert "secret" not in again
    assert made["secret"] not in api.get(PATH, key="acme").text
    secret_bytes = made["secret"].encode()
    assert secret_bytes not in api.store.path.read_bytes()
    wal = api.store.path.with_name(api.store.path.name + "-wal")
    assert not wal.exists() or secret_bytes not in wal.read_bytes()


def test_without_events_every_type_is_sent(api: OpsApi) -> None:
    """Without events every type is sent."""
    made = _register(api).json()
    assert made["all_events"] is True
    assert "receipt.waiting" in made["events"]


@pytest.mark.parametrize(("body", "field"), [
    ({"url": "http://hooks.example.com/x"}, "url"),
    ({"url": "https://127.0.0.1/x"}, "url"),
    ({"url": "https://10.0.0.5/x"}, "url"),
    ({"url": "https://169.254.169.254/latest/meta-data"}, "url"),
    ({"url": "https://localhost/x"}, "url"),
    ({"url": "https://[::1]/x"}, "url"),
    ({"url": "ftp://example.com/x"}, "url"),
    ({"url": "https://example.com/x", "events": ["receipt.billed"]}, "events[0]"),
    ({"url": "https://example.com/x", "events": ["ping"]}, "events[0]"),
    ({"events": ["receipt.completed"]}, "url"),
])
def test_bad_registrations_are_422_naming_the_field_and_store_nothing(
    strict: OpsApi, body: dict[str, Any], field: str,
) -> None:
    """Bad registrations are 422 naming the field and store nothing."""
    response = strict.post(PATH, key="acme", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == field
    assert response.json()["error"]["code"] == "invalid_field"
    assert _stored(strict) == 0


def test_no_key_is_401_and_a_non_json_body_415(api: OpsApi) -> None:
    """No key is 401 and a non json body 415."""
    assert api.post(PATH, key=None, json={"url": "http://127.0.0.1/"}).status_code == 401
    assert api.post(PATH, key="acme", content=b"url=x").status_code == 415
    assert _stored(api) == 0


def test_without_credentials_key_registration_is_503_and_stores_nothing(tmp_path: Path) -> None:
    """Without credentials key registration is 503 and stores nothing."""
    for api in _api(tmp_path, PARTNER_WEBHOOKS_ALLOW_PRIVATE="true"):
        response = _register(api)
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "credentials_key_missing"
        assert _stored(api) == 0


def test_a_partner_sees_and_touches_only_its_own_endpoints(api: OpsApi) -> None:
    """A partner sees and touches only its own endpoints."""
    mine = _register(api, key="acme").json()["id"]
    theirs = _register(api, key="globex").json()["id"]
    assert [e["id"] for e in api.get(PATH, key="acme").json()["data"]] == [mine]
    assert [e["id"] for e in api.get(PATH, key="ops").json()["data"]] == []  # an admin's own
    for method, suffix in (("GET", ""), ("DELETE", ""), ("POST", "/rotate-secret"),
                           ("POST", "/test"), ("GET", "/deliveries")):
        response = api.client.request(method, f"{PATH}/{theirs}{suffix}",
                                      headers=api.auth("acme"))
        assert response.status_code == 404, (method, suffix)
    assert api.get(f"{PATH}/{theirs}", key="globex").json()["state"] == "enabled"


def test_rotate_gives_a_new_secret_and_keeps_the_old_for_24_h(api: OpsApi) -> None:
    """Rotate gives a new secret and keeps the old for 24 h."""
    made = _register(api).json()
    rotated = api.post(f"{PATH}/{made['id']}/rotate-secret", key="acme").json()
    assert rotated["secret"] != made["secret"]
    assert rotated["previous_secret_expires_at"] is not None


def test_test_queues_a_ping_listed_in_the_deliveries(api: OpsApi) -> None:
    """Test queues a ping listed in the deliveries."""
    made = _register(api, events=["receipt.failed"]).json()
    ping = api.post(f"{PATH}/{made['id']}/test", key="acme")
    assert ping.status_code == 202
    assert (ping.json()["type"], ping.json()["state"]) == ("ping", "pending")
    listed = api.get(f"{PATH}/{made['id']}/deliveries", key="acme").json()
    assert [d["id"] for d in listed["data"]] == [ping.json()["id"]]
    assert api.get(f"{PATH}/{made['id']}/deliveries", key="acme",
                   state="failed").json()["data"] == []


def test_replay_of_a_delivery_that_did_not_fail_is_409(api: OpsApi) -> None:
    """Replay of a delivery that did not fail is 409."""
    made = _register(api).json()
    ping = api.post(f"{PATH}/{made['id']}/test", key="acme").json()
    response = api.post(f"{PATH}/{made['id']}/deliveries/{ping['id']}/replay", key="acme")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "not_failed"
    missing = api.post(f"{PATH}/{made['id']}/deliveries/dlv_nope/replay", key="acme")
    assert missing.status_code == 404


def test_replay_failed_since_takes_an_iso_time(api: OpsApi) -> None:
    """Replay failed since takes an iso time."""
    made = _register(api).json()
    path = f"{PATH}/{made['id']}/replay-failed"
    assert api.post(path, key="acme", json={"since": "yesterday"}).status_code == 422
    response = api.post(path, key="acme", json={"since": "2026-12-01T00:00:00+00:00"})
    assert (response.status_code, response.json()) == (202, {"replayed": 0})


def test_delete_stops_everything_and_hides_it(api: OpsApi) -> None:
    """Delete stops everything and hides it."""
    made = _register(api).json()
    api.post(f"{PATH}/{made['id']}/test", key="acme")
    deleted = api.client.delete(f"{PATH}/{made['id']}", headers=api.auth("acme"))
    assert deleted.json()["state"] == "deleted"
    assert api.get(f"{PATH}/{made['id']}", key="acme").status_code == 404
    assert api.get(PATH, key="acme").json()["data"] == []
    states = api.store.sql("SELECT state FROM notification_deliveries")
    assert states == [("failed",)]


def test_the_lifted_address_rules_are_logged_at_start_up(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """PARTNER_WEBHOOKS_ALLOW_PRIVATE=true is said once at the web process's start-up."""
    for _ in _api(tmp_path, CREDENTIALS_KEY=CREDENTIALS_KEY, PARTNER_WEBHOOKS_ALLOW_PRIVATE="true"):
        pass
    assert "notifications.private_addresses_allowed" in capsys.readouterr().err
