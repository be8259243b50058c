"""Schemathesis against /openapi.json: every operation, thousands of generated requests, no 5xx
and no answer the spec does not describe (status code, content type, body schema, headers).

The app runs under a real uvicorn on loopback, on a database seeded with a bit of everything so
listings have rows to validate. Generation is derandomized (repeatable) and bounded per operation
so the run stays well under a minute; each operation's test checks it sent all its cases. Valid
keys are supplied: the admin key for admin-only operations, a partner key for the others;
`ignored_auth` also sends each one without its key.
"""

from __future__ import annotations

import json
import re
import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests

from receiver.app import COMPONENTS
from receiver.openapi import build_spec
from sync.alegra.records import flatten_accounts, tax_from_alegra
from sync.store import jobs
from sync.store.accounts import upsert_accounts
from sync.store.db import Database
from sync.store.partners import create_partner
from sync.store.subscriptions import record_missing, record_present
from sync.store.taxes import upsert_taxes
from tests.ops.conftest import Store, contact_json
from tests.support.procs import ManagedProcess, free_port, product_env

with warnings.catch_warnings():
    # schemathesis 3 touches jsonschema's deprecated RefResolver API as it loads (lazily); the
    # suite turns warnings into errors, so those (not ours to fix) are silenced for this module.
    warnings.simplefilter("ignore", DeprecationWarning)
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from schemathesis import DataGenerationMethod
    from schemathesis.checks import (
        content_type_conformance,
        ignored_auth,
        not_a_server_error,
        response_headers_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    SCHEMA = schemathesis.from_dict(
        build_spec(COMPONENTS),
        data_generation_methods=[DataGenerationMethod.positive, DataGenerationMethod.negative],
    )
    OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning")]
EXAMPLES_PER_OPERATION = 200
# The receipt body's schema is costly to generate (~0.4 s a case, in hypothesis-jsonschema), so
# that one operation gets fewer cases; tests/receipts_api covers its rules one by one.
EXAMPLES = {"POST /v1/receipts": 25}
CHECKS = (not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, response_headers_conformance)
UNSENDABLE = re.compile(r"[^\t\x20-\x7e]")
AUTH_CHECKED_CASES = 5  # `ignored_auth` re-sends a case without and with a wrong key: a few suffice
CHART = [{"id": "5", "name": "Gastos", "type": "expense", "code": "6", "children": [
    {"id": "51", "idParent": "5", "name": "Gastos de oficina", "type": "expense", "code": "6.1"}]}]
RECEIPT = {"supplier": {"name": "Ochoa SRL", "tax_id": "1-31-24679-6"}, "date": "2024-05-01",
           "category": "Gastos de oficina",
           "lines": [{"description": "Tornillos", "amount": "100.00", "tax_rate": 18}]}


@dataclass
class Live:
    url: str
    keys: dict[str, str]
    session: requests.Session


async def _seed_store(db: Database) -> dict[str, str]:
    keys = {}
    for name, admin in (("acme", False), ("ops", True)):
        _, keys[name] = await create_partner(db, name, admin)
    await upsert_accounts(db, flatten_accounts(CHART), source="poll")
    await upsert_taxes(db, [tax_from_alegra({"id": "1", "name": "ITBIS", "percentage": "18.00"})],
                       source="backfill")
    await record_present(db, "edit-client", "1", 0, created=True, recreated=False)
    await record_missing(db, "new-client")
    await jobs.ensure_jobs(db, {"backfill": None})
    run_id = await jobs.start_run(db, "backfill")
    await jobs.finish_run(db, run_id, "backfill", owner="t", outcome="success", duration_s=1.0,
                          error=None, next_run_at=None, detail={})
    await jobs.save_drift_report(db, run_id, {"complete": True, "missing": 1, "extra": 0,
                                              "different": 2})
    return keys


def _seed(store: Store, url: str, keys: dict[str, str]) -> None:
    """Rows in every table the operators read, written through the product's own paths."""
    store.contacts(contact_json("7", "Ochoa SRL", "131246796"), contact_json("8", "Sol"))
    store.deliveries({"subject": "edit-client", "message": {"client": {"id": "7"}}})
    store.fail_delivery(1)
    store.sql("INSERT INTO inbox(received_at, body, shape, state) VALUES ('2024-01-01T00:00:00"
              "+00:00', ?, 'malformed', 'skipped')", (b"\xff not json",))
    store.heartbeat()
    for n in range(3):
        response = httpx.post(f"{url}/v1/receipts", json=RECEIPT, headers={
            "Authorization": f"Bearer {keys['acme']}", "Idempotency-Key": f"seed-{n}"})
        assert response.status_code == 202, response.text
    store.sql("UPDATE receipts SET status = 'failed', error = ? WHERE idempotency_key = 'seed-0'",
              (json.dumps({"step": "bill", "status": 400, "message": "no"}),))


def start_web_process(env: dict[str, str], folder: Path) -> ManagedProcess:
    """uvicorn as the Procfile runs it, but keeping idle connections for a minute: generating a
    receipt body can take seconds, and uvicorn's 5 s keep-alive would otherwise close the client's
    connection while a request is on its way (a race h11 answers with a bare text/plain 400)."""
    args = [sys.executable, "-m", "uvicorn", "receiver.app:create_app", "--factory", "--host",
            "127.0.0.1", "--port", env["PORT"], "--no-access-log", "--timeout-keep-alive", "60"]
    web = ManagedProcess("web", args, env, folder).start()
    web.wait_http(f"http://127.0.0.1:{env['PORT']}/healthz")
    return web


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """The real app (uvicorn, its own process) on a seeded database, on a loopback port."""
    folder = Path(tmp_path_factory.mktemp("fuzz"))
    port = free_port()
    env = product_env(folder / "fuzz.db", alegra_base_url="http://127.0.0.1:9", email="a@b.do",
                      token="unused-token", port=port, LOG_LEVEL="warning")
    store = Store(folder / "fuzz.db")
    keys = store.run(_seed_store)
    web = start_web_process(env, folder)
    try:
        _seed(store, f"http://127.0.0.1:{port}", keys)
        with requests.Session() as session:
            yield Live(f"http://127.0.0.1:{port}", keys, session)
    finally:
        web.stop()


def _fuzz(operation: Any, examples: int) -> Callable[[Callable[[Any], None]], Any]:
    """`@given` cases of this operation, `examples` of them, the same on every run."""
    def decorate(test: Callable[[Any], None]) -> Any:
        return settings(max_examples=examples, derandomize=True, deadline=None, database=None,
                        phases=[Phase.explicit, Phase.generate],
                        suppress_health_check=list(HealthCheck))(
            given(case=operation.as_strategy())(test))

    return decorate


def _prepare(case: Any, key: str) -> None:
    """Our key in, `Prefer` out (`wait=N` would hold a request N seconds: no worker runs here),
    and characters no HTTP header can carry replaced: uvicorn refuses those itself, with a bare
    text/plain 400, before any app sees the request."""
    headers = {k: UNSENDABLE.sub("?", str(v)) for k, v in (case.headers or {}).items()
               if k.lower() != "prefer"}
    case.headers = {**headers, "Authorization": f"Bearer {key}"}


@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda op: op.verbose_name)
def test_api_matches_its_openapi_spec(operation: Any, live: Live) -> None:
    """Whatever is sent, the answer is one the spec describes, and never a 5xx; and an operation
    that declares a key refuses a request without one or with a wrong one."""
    key = live.keys["ops" if operation.definition.raw.get("x-admin-only") else "acme"]
    operation.base_url = live.url  # known only now; checks that re-send a case need it
    examples = EXAMPLES.get(operation.verbose_name, EXAMPLES_PER_OPERATION)
    sent = 0

    @_fuzz(operation, examples)
    def conforms(case: Any) -> None:
        nonlocal sent
        _prepare(case, key)
        sent += 1
        response = case.call(base_url=live.url, session=live.session, timeout=10)
        case.validate_response(response, checks=CHECKS)

    @_fuzz(operation, AUTH_CHECKED_CASES)
    def needs_its_key(case: Any) -> None:
        _prepare(case, key)
        response = case.call(base_url=live.url, session=live.session, timeout=10)
        case.validate_response(response, checks=(), additional_checks=(ignored_auth,))

    conforms()
    needs_its_key()
    # Every case it was given, or the one there is for an operation that takes no input.
    assert sent >= (examples if _takes_input(operation) else 1), sent


def _takes_input(operation: Any) -> bool:
    return bool(operation.definition.raw.get("parameters")
                or operation.definition.raw.get("requestBody"))
