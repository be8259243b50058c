"""GET /healthz (alive) and GET /readyz (database, migrations, worker heartbeat)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.ops.conftest import OpsApi


def test_healthz_answers_while_the_process_lives(ops: OpsApi) -> None:
    """Liveness needs nothing but the process."""
    assert ops.client.get("/healthz").json() == {"status": "ok"}


def test_readyz_is_200_with_a_recent_heartbeat(ops: OpsApi) -> None:
    """Database up, migrations applied and a fresh heartbeat: ready."""
    ops.store.heartbeat()
    response = ops.client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["reasons"]) == ("ready", [])
    assert body["checks"]["pending_migrations"] == []


def test_readyz_is_503_when_the_heartbeat_is_stale(ops: OpsApi) -> None:
    """A heartbeat older than 30 s means the worker is gone: not ready, and why."""
    stale = (datetime.now(UTC) - timedelta(seconds=45)).isoformat(timespec="microseconds")
    ops.store.heartbeat(beat_at=stale)
    response = ops.client.get("/readyz")
    assert response.status_code == 503
    (reason,) = response.json()["reasons"]
    assert reason.startswith("worker heartbeat is 45 s old")


def test_readyz_is_503_before_the_worker_ever_ran(ops: OpsApi) -> None:
    """No heartbeat at all is not ready either."""
    response = ops.client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["reasons"] == ["the worker has never sent a heartbeat"]


def test_readyz_is_503_with_a_migration_missing(ops: OpsApi) -> None:
    """A database behind the code (a migration not applied) is not ready."""
    ops.store.heartbeat()
    ops.store.sql("DELETE FROM schema_migrations WHERE version = 400")
    response = ops.client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["reasons"] == ["migrations not applied: 400"]
