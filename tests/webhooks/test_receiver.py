"""The webhook endpoint under the real app: token check, handshake, durable inbox, bounds."""

from __future__ import annotations

import gc
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient
from structlog.testing import capture_logs

from receiver import webhooks
from receiver.app import create_app
from sync.settings import Settings
from sync.webhook_tokens import make_token
from tests.support.procs import eventually
from tests.webhooks.conftest import NEW_KEY, OLD_KEY, delivery, make_settings, read_db


def inbox_rows(settings: Settings) -> list[sqlite3.Row]:
    return read_db(settings.database_path, "SELECT * FROM inbox ORDER BY id")


def test_handshake_is_answered_and_noted_only(
    app_client: TestClient, settings: Settings, token: str
) -> None:
    """Alegra's empty-body check gets a 200 and leaves a handshake note, not an inbox row."""
    response = app_client.post(f"/webhooks/alegra/{token}", content=b"")
    assert response.status_code == 200
    handshakes = read_db(settings.database_path, "SELECT key_index FROM webhook_handshakes")
    assert [h["key_index"] for h in handshakes] == [0]
    assert inbox_rows(settings) == []


def test_delivery_is_committed_before_the_answer(
    app_client: TestClient, settings: Settings, token: str
) -> None:
    """When the 2xx arrives, another connection already sees the row: it was committed first."""
    body = delivery("edit-client", "client", id="42", name={"fullname": "Ana Ruiz"})
    response = app_client.post(f"/webhooks/alegra/{token}", content=body)
    assert response.status_code == 200
    rows = inbox_rows(settings)
    assert [r["id"] for r in rows] == [response.json()["id"]]
    row = rows[0]
    assert (row["subject"], row["resource"], row["resource_id"], row["shape"], row["state"]) == (
        "edit-client", "client", "42", "ok", "received")
    assert bytes(row["body"]) == body
    assert row["key_index"] == 0


def test_bad_token_is_404_stores_nothing_and_logs_no_token(
    app_client: TestClient, settings: Settings, token: str
) -> None:
    """A wrong token looks like any unknown path; nothing is stored and the token is not logged."""
    forged = token[:-3] + "AAA"
    with capture_logs() as logs:
        response = app_client.post(f"/webhooks/alegra/{forged}", content=delivery(
            "edit-client", "client", id="1"))
        handshake = app_client.post(f"/webhooks/alegra/{forged}", content=b"")
    assert (response.status_code, handshake.status_code) == (404, 404)
    assert response.json() == app_client.post("/no/such/path").json()
    assert inbox_rows(settings) == []
    assert read_db(settings.database_path, "SELECT * FROM webhook_handshakes") == []
    assert [entry["event"] for entry in logs] == ["webhook.bad_token", "webhook.bad_token"]
    assert forged not in repr(logs)


def test_no_log_line_carries_the_token(
    app_client: TestClient, token: str, capfd: pytest.CaptureFixture[str]
) -> None:
    """Stored deliveries and handshakes are logged (the stored ones by the committer process)
    without the URL's token."""
    with capture_logs() as logs:
        app_client.post(f"/webhooks/alegra/{token}", content=b"")
        app_client.post(f"/webhooks/alegra/{token}",
                        content=delivery("new-client", "client", id="1"))
        app_client.post(f"/webhooks/alegra/{token}", content=b"not json")
    committer: list[dict[str, Any]] = []

    def stored() -> int:
        committer.extend(json.loads(line) for line in capfd.readouterr().err.splitlines())
        return sum(e["count"] for e in committer if e["event"] == "webhook.stored")

    assert "webhook.handshake" in {entry["event"] for entry in logs}
    eventually(lambda: stored() == 2, timeout=5, what="both deliveries logged as stored")
    unusable = [e for e in committer if e["event"] == "webhook.unusable"]
    assert [e["shape"] for e in unusable] == ["malformed"]
    for text in (repr(logs), repr(committer)):
        assert token not in text
        assert NEW_KEY not in text


def test_old_key_url_still_accepted_after_rotation(tmp_path: Path) -> None:
    """With a new key put first, deliveries to the old key's URL are still stored (as key 1)."""
    settings = make_settings(tmp_path, secret_key=f"{NEW_KEY},{OLD_KEY}")
    old_token = make_token([OLD_KEY])
    with TestClient(create_app(settings)) as client:
        response = client.post(f"/webhooks/alegra/{old_token}",
                               content=delivery("new-client", "client", id="9"))
    assert response.status_code == 200
    assert [r["key_index"] for r in inbox_rows(settings)] == [1]


def test_oversize_body_is_413_and_not_stored(
    app_client: TestClient, settings: Settings, token: str
) -> None:
    """A body past MAX_WEBHOOK_BODY_BYTES is refused, whether its length is declared or not."""
    too_big = b"x" * (settings.max_webhook_body_bytes + 1)

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(too_big), 4096):
            yield too_big[start:start + 4096]

    declared = app_client.post(f"/webhooks/alegra/{token}", content=too_big)
    streamed = app_client.post(f"/webhooks/alegra/{token}", content=chunks())
    assert (declared.status_code, streamed.status_code) == (413, 413)
    assert inbox_rows(settings) == []


def test_body_at_the_limit_is_stored(
    app_client: TestClient, settings: Settings, token: str
) -> None:
    """Exactly MAX_WEBHOOK_BODY_BYTES is still accepted."""
    body = b"x" * settings.max_webhook_body_bytes
    assert app_client.post(f"/webhooks/alegra/{token}", content=body).status_code == 200
    assert len(inbox_rows(settings)) == 1


@pytest.mark.parametrize(("body", "shape"), [
    (b"{not json", "malformed"),
    (b"\xff\xfe", "malformed"),
    (b'{"subject": "new-client", "message": {}}', "unknown"),
    (b'{"hello": "world"}', "unknown"),
    (b'{"subject": "edit-client\\ud83d", "message": {"client": {"id": "1"}}}', "malformed"),
    (b'{"subject": "edit-client", "message": {"client": {"id": "1\\ud83d"}}}', "malformed"),
    (b"[" * 100_000, "malformed"),
    (b"[1e999999]", "unknown"),
])
def test_malformed_or_unknown_body_is_stored_and_acknowledged(
    app_client: TestClient, settings: Settings, token: str, body: bytes, shape: str
) -> None:
    """A body we cannot use still gets a 2xx (a 5xx would count toward losing the subscription)."""
    response = app_client.post(f"/webhooks/alegra/{token}", content=body)
    assert response.status_code == 200
    rows = inbox_rows(settings)
    assert [(r["shape"], bytes(r["body"])) for r in rows] == [(shape, body)]


def test_concurrent_deliveries_are_all_committed_with_their_own_ids(
    app_client: TestClient, settings: Settings, token: str
) -> None:
    """Many deliveries at once (batched into shared commits) each get their own row and id."""
    def send(n: int) -> tuple[int, int]:
        response = app_client.post(f"/webhooks/alegra/{token}",
                                   content=delivery("edit-client", "client", id=f"c{n}"))
        assert response.status_code == 200
        return n, response.json()["id"]

    with ThreadPoolExecutor(max_workers=16) as pool:
        answered = dict(pool.map(send, range(200)))
    rows = {r["id"]: r["resource_id"] for r in inbox_rows(settings)}
    assert len(rows) == 200
    assert all(rows[inbox_id] == f"c{n}" for n, inbox_id in answered.items())


def test_start_up_objects_stay_out_of_full_collections_while_the_app_runs(
    settings: Settings,
) -> None:
    """Once started, the web process's start-up objects are frozen out of the garbage
    collector's passes (a full pass over them stalled every request for ~30 ms); at shutdown
    they are handed back."""
    assert gc.get_freeze_count() == 0
    with TestClient(create_app(settings)):
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0


def test_momentary_lock_by_another_process_is_waited_out(
    app_client: TestClient, settings: Settings, token: str
) -> None:
    """While another connection holds the write lock briefly, the delivery waits and is stored."""
    release = hold_write_lock(settings.database_path, seconds=0.5)
    started = time.monotonic()
    response = app_client.post(f"/webhooks/alegra/{token}",
                               content=delivery("new-client", "client", id="1"))
    elapsed = time.monotonic() - started
    release.join()
    assert response.status_code == 200
    assert elapsed < 2.0
    assert len(inbox_rows(settings)) == 1


def test_store_that_cannot_commit_in_time_answers_503_not_2xx(
    app_client: TestClient, settings: Settings, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the row is not committed by the deadline, the answer is 503 (Alegra delivers again)."""
    monkeypatch.setattr(webhooks, "STORE_DEADLINE_S", 0.2)
    release = hold_write_lock(settings.database_path, seconds=1.0)
    response = app_client.post(f"/webhooks/alegra/{token}",
                               content=delivery("new-client", "client", id="1"))
    release.join()
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"


def test_only_post_is_accepted(app_client: TestClient, token: str) -> None:
    """GET on the webhook URL is 405."""
    assert app_client.get(f"/webhooks/alegra/{token}").status_code == 405


def hold_write_lock(path: Path, seconds: float,
                    release: threading.Event | None = None) -> threading.Thread:
    """Hold SQLite's write lock from another connection for `seconds` (as a busy worker would),
    or until `release` is set if one is given (`seconds` then bounds the wait)."""
    locked = threading.Event()

    def hold() -> None:
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        locked.set()
        if release is None:
            time.sleep(seconds)
        else:
            release.wait(seconds)
        conn.execute("COMMIT")
        conn.close()

    thread = threading.Thread(target=hold)
    thread.start()
    locked.wait(5)
    return thread
