"""`POST/GET /v1/companies`, `GET/DELETE /v1/companies/{id}`: admin keys only; a company is
stored with its token encrypted, and no answer, log line, metric or database byte holds it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from receiver.app import create_app
from sync.logs import configure_logging
from sync.store.db import Database
from sync.store.partners import create_partner
from tests.companies.conftest import KEY_A, TOKEN, stored_bytes
from tests.ops.conftest import OpsApi, Store, make_settings

BODY = {"name": "Ferretería Ochoa", "email": "ops@ochoa.do", "token": TOKEN}


async def _partners(db: Database) -> dict[str, str]:
    keys = {}
    for name, admin in (("acme", False), ("ops", True)):
        _, keys[name] = await create_partner(db, name, admin)
    return keys


def _api(tmp_path: Path, **env: str) -> Iterator[OpsApi]:
    settings = make_settings(tmp_path, **env)
    store = Store(settings.database_path)
    keys = store.run(_partners)
    with TestClient(create_app(settings)) as client:
        yield OpsApi(client, store, keys, settings)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[OpsApi]:
    """The app with CREDENTIALS_KEY set, a partner `acme` and an admin `ops`."""
    yield from _api(tmp_path, CREDENTIALS_KEY=KEY_A)


def _create(api: OpsApi, body: dict[str, Any] | None = None, key: str = "ops") -> httpx.Response:
    return api.post("/v1/companies", key=key, json=BODY if body is None else body)


def _delete(api: OpsApi, company: str, key: str = "ops") -> httpx.Response:
    return api.client.delete(f"/v1/companies/{company}", headers=api.auth(key))


def _ids(api: OpsApi) -> list[str]:
    return [row[0] for row in api.store.sql("SELECT id FROM companies ORDER BY id")]


def test_post_stores_the_company_and_answers_201_without_the_token(api: OpsApi) -> None:
    """201 with the company (id a slug of the name, state active) and its Location; the token
    is in no answer, and in the database only encrypted."""
    response = _create(api, {**BODY, "base_url": "https://sandbox.example/api/v1/"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["id"] == "ferreteria-ochoa"
    assert response.headers["Location"] == "/v1/companies/ferreteria-ochoa"
    assert (body["name"], body["email"], body["state"]) == (
        "Ferretería Ochoa", "ops@ochoa.do", "active")
    assert body["base_url"] == "https://sandbox.example/api/v1"
    assert "token" not in body
    assert TOKEN not in response.text
    assert api.store.sql("SELECT token_enc IS NOT NULL FROM companies WHERE id = ?",
                         ("ferreteria-ochoa",)) == [(1,)]


def test_list_and_get_show_companies_never_their_token(api: OpsApi) -> None:
    """GET /v1/companies lists every company by id (default included), paged with a cursor;
    GET /v1/companies/{id} answers one; neither holds a token."""
    for name in ("Bravo", "Alpha", "Charlie"):
        assert _create(api, {**BODY, "name": name}).status_code == 201
    walked, params = [], {"limit": 2}
    while True:
        page = api.get("/v1/companies", **params)
        assert page.status_code == 200, page.text
        assert TOKEN not in page.text
        walked += [c["id"] for c in page.json()["data"]]
        if not page.json()["next_cursor"]:
            break
        params["cursor"] = page.json()["next_cursor"]
    assert walked == ["alpha", "bravo", "charlie", "default"]

    one = api.get("/v1/companies/bravo")
    assert one.status_code == 200
    assert one.json()["name"] == "Bravo"
    default = api.get("/v1/companies/default").json()
    assert (default["email"], default["state"]) == (None, "active")  # the simulator's
    assert api.get("/v1/companies/nobody").status_code == 404


def test_delete_marks_the_company_removed_and_default_cannot_be(api: OpsApi) -> None:
    """DELETE answers the company, now `removed` (its row stays); `default` is a 409, an unknown
    id a 404."""
    assert _create(api).status_code == 201
    response = _delete(api, "ferreteria-ochoa")
    assert response.status_code == 200, response.text
    assert response.json()["state"] == "removed"
    assert api.get("/v1/companies/ferreteria-ochoa").json()["state"] == "removed"

    refused = _delete(api, "default")
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "default_company"
    assert _delete(api, "nobody").status_code == 404
    assert _create(api).status_code == 409  # its id is still taken until purged


@pytest.mark.parametrize(("body", "field"), [
    ({"email": "a@b.do", "token": TOKEN}, "name"),
    ({**BODY, "name": "Default"}, "name"),
    ({**BODY, "name": "☕"}, "name"),
    ({**BODY, "email": "nobody"}, "email"),
    ({**BODY, "token": ""}, "token"),
    ({**BODY, "token": "has space"}, "token"),
    ({**BODY, "token": 12345}, "token"),
    ({**BODY, "base_url": "ftp://x.do"}, "base_url"),
    ({**BODY, "base_url": "https://user:pw@x.do"}, "base_url"),
])
def test_bad_input_is_422_naming_the_field_and_stores_nothing(
    api: OpsApi, body: dict[str, Any], field: str
) -> None:
    """Each rule broken: 422 `invalid_field` naming the field, and no company stored."""
    response = _create(api, body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_field"
    assert response.json()["error"]["field"] == field
    assert TOKEN not in response.text
    assert _ids(api) == ["default"]


def test_a_clash_is_409_naming_the_id(api: OpsApi) -> None:
    """A name whose slug is taken: 409 `company_exists` naming the id; the first is kept."""
    assert _create(api).status_code == 201
    response = _create(api, {**BODY, "name": "FERRETERIA  ochoa!"})
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "company_exists"
    assert "'ferreteria-ochoa'" in response.json()["error"]["message"]
    assert _ids(api) == ["default", "ferreteria-ochoa"]


def test_malformed_json_and_other_media_are_refused(api: OpsApi) -> None:
    """Not JSON: 400; not application/json: 415; nothing stored either way."""
    bad = api.post("/v1/companies", content=b"{nope", headers={"Content-Type": "application/json"})
    assert (bad.status_code, bad.json()["error"]["code"]) == (400, "malformed_json")
    text = api.post("/v1/companies", content=b"name=x", headers={"Content-Type": "text/plain"})
    assert text.status_code == 415
    assert _ids(api) == ["default"]


def test_partner_keys_get_403_and_no_key_401(api: OpsApi) -> None:
    """Every companies endpoint: a partner key 403, none 401; nothing stored or removed."""
    assert _create(api).status_code == 201
    calls = [lambda key: _create(api, {**BODY, "name": "Other"}, key=key),
             lambda key: api.get("/v1/companies", key=key),
             lambda key: api.get("/v1/companies/default", key=key),
             lambda key: _delete(api, "ferreteria-ochoa", key=key)]
    for call in calls:
        assert call("acme").status_code == 403
        assert call(None).status_code == 401  # type: ignore[arg-type]
    assert _ids(api) == ["default", "ferreteria-ochoa"]
    assert api.get("/v1/companies/ferreteria-ochoa").json()["state"] == "active"


def test_without_credentials_key_post_is_503_and_stores_nothing(tmp_path: Path) -> None:
    """A deployment without CREDENTIALS_KEY cannot store a token: 503
    `credentials_key_missing`, nothing stored; reading still works."""
    for api in _api(tmp_path):
        response = _create(api)
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "credentials_key_missing"
        assert _ids(api) == ["default"]
        assert api.get("/v1/companies").status_code == 200


def test_the_token_is_in_no_log_line_metric_or_database_byte(
    api: OpsApi, capsys: pytest.CaptureFixture[str]
) -> None:
    """After a company is added, refused once (clash) and removed: the token is in no log line
    (the web process's), no /metrics answer, and not in the database file or its -wal."""
    configure_logging("json", "debug")  # into this test's captured stderr
    assert _create(api).status_code == 201
    assert _create(api).status_code == 409
    assert _delete(api, "ferreteria-ochoa").status_code == 200
    metrics = api.client.get("/metrics")
    logs = capsys.readouterr()

    assert metrics.status_code == 200
    assert TOKEN not in metrics.text
    assert "company.added" in logs.err
    assert TOKEN not in logs.out + logs.err
    assert TOKEN.encode() not in stored_bytes(api.settings.database_path)
