"""`alegra-sync status` and `alegra-sync receipts show|retry`: the operator's first questions,
answered from the database in a terminal, coloured only on one."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from sync.alegra.errors import Rejected
from sync.cli import main
from sync.commands.receipts import format_receipt
from sync.commands.status import format_status
from sync.commands.terminal import Paint, colour_wanted
from sync.store import receipt_work
from sync.store.db import Database
from sync.store.subscriptions import record_present
from tests.ops.conftest import SECRET_KEY, OpsApi

RECEIPT = {
    "supplier": {"name": "Ferretería Ochoa, S.R.L.", "tax_id": "1-31-24679-6"},
    "date": "2024-05-01", "ncf": "B0100000005", "category": "Gastos de oficina",
    "lines": [{"description": "Tornillos", "amount": "100.00", "tax_rate": 18}],
}
ANSI = "\x1b["


@pytest.fixture
def cli(ops: OpsApi, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> OpsApi:
    """The CLI's environment pointed at the ops app's database (no .env in the directory)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SECRET_KEY", SECRET_KEY)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{ops.settings.database_path}")
    monkeypatch.delenv("NO_COLOR", raising=False)
    return ops


def _submit(ops: OpsApi, key: str = "k1") -> str:
    response = ops.post("/v1/receipts", key="acme", json=RECEIPT,
                        headers={"Idempotency-Key": key})
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def _fail_with_alegra_refusal(ops: OpsApi) -> str:
    """What the worker records when Alegra refuses the bill: the supplier done, the bill failed."""
    refusal = Rejected("El número de comprobante ya existe", status=400, code=3061,
                       method="POST", path="/bills")

    async def work(db: Database) -> str:
        claimed = await receipt_work.claim_next(db, owner="w1", lease_s=30)
        assert claimed is not None
        error = {"step": "bill", **refusal.as_record()}
        log = receipt_work.StepLog(db, claimed.receipt_id, "w1")
        log.done("supplier", outcome="found", alegra_id="77", detail=None)
        await log.attempting("bill")
        assert await log.fail(error, "bill")
        return claimed.receipt_id

    return ops.store.run(work)


def _healthy(ops: OpsApi) -> None:
    ops.store.heartbeat()
    ops.store.job_run("backfill", "success")
    ops.store.job_run("reconcile", "success")

    async def subscribe(db: Database) -> None:
        for n, event in enumerate(("new-client", "edit-client", "delete-client")):
            await record_present(db, event, str(n), 0, created=True, recreated=False)

    ops.store.run(subscribe)


def test_a_failed_receipt_shows_alegras_answer_and_what_to_do(
    cli: OpsApi, capsys: pytest.CaptureFixture[str]
) -> None:
    """`receipts show` names the failed step, Alegra's status, code and message, and the fix."""
    _submit(cli)
    receipt_id = _fail_with_alegra_refusal(cli)
    assert main(["receipts", "show", receipt_id]) == 0
    out = capsys.readouterr().out
    assert f"Receipt {receipt_id}: FAILED" in out
    assert "in step bill: Rejected — Alegra answered HTTP 400, code 3061" in out
    assert "message: El número de comprobante ya existe" in out
    assert "supplier: done (found) → 77" in out
    assert "partner     acme" in out
    assert "what to do  Alegra refused the bill step" in out
    assert f"alegra-sync receipts retry {receipt_id}" in " ".join(out.split())  # maybe wrapped
    assert ANSI not in out  # captured output is not a terminal


def test_a_receipt_whose_bill_outcome_is_unknown_says_retry_never_resubmit(
    cli: OpsApi, capsys: pytest.CaptureFixture[str]
) -> None:
    """A failed receipt whose bill step is still attempting warns that a bill may exist."""
    _submit(cli)

    async def work(db: Database) -> str:
        claimed = await receipt_work.claim_next(db, owner="w1", lease_s=30)
        assert claimed is not None
        log = receipt_work.StepLog(db, claimed.receipt_id, "w1")
        await log.attempting("bill")
        error = {"step": "bill", "kind": "OutcomeUnknown", "status": None, "code": None,
                 "message": "no answer", "retryable": True, "gave_up_after_s": 86400.0}
        assert await log.fail(error, None)
        return claimed.receipt_id

    receipt_id = cli.store.run(work)
    assert main(["receipts", "show", receipt_id]) == 0
    out = capsys.readouterr().out
    advice = " ".join(out.split())  # wrapped to the terminal's width
    assert "a bill may exist in Alegra" in advice
    assert "never submit the receipt again" in advice


def test_show_json_is_the_admin_apis_document(
    cli: OpsApi, capsys: pytest.CaptureFixture[str]
) -> None:
    """`receipts show --json` prints what the admin listing answers for it, byte for byte (one
    renderer, `sync.receipt_resource`, serves both)."""
    _submit(cli)
    receipt_id = _fail_with_alegra_refusal(cli)
    assert main(["receipts", "show", receipt_id, "--json"]) == 0
    printed = capsys.readouterr().out
    [listed] = cli.get("/v1/receipts").json()["data"]
    assert printed == json.dumps(listed, indent=2, ensure_ascii=False) + "\n"


def test_an_unknown_receipt_is_one_line_and_non_zero(
    cli: OpsApi, capsys: pytest.CaptureFixture[str]
) -> None:
    """A receipt id that does not exist is said so, on stderr, exit 1."""
    assert main(["receipts", "show", "rcp_nope"]) == 1
    assert capsys.readouterr().err.strip() == "alegra-sync: no receipt rcp_nope"


def test_retry_from_the_command_line_queues_a_failed_receipt(
    cli: OpsApi, capsys: pytest.CaptureFixture[str]
) -> None:
    """`receipts retry` puts a failed receipt back in the queue; a second retry is refused."""
    _submit(cli)
    receipt_id = _fail_with_alegra_refusal(cli)
    assert main(["receipts", "retry", receipt_id]) == 0
    assert cli.get(f"/v1/receipts/{receipt_id}").json()["status"] == "queued"
    assert main(["receipts", "retry", receipt_id]) == 1
    assert "it is queued, not failed" in capsys.readouterr().err


def test_status_names_each_reason_and_exits_non_zero_when_untrustworthy(
    cli: OpsApi, capsys: pytest.CaptureFixture[str]
) -> None:
    """A fresh database: NOT trustworthy, each reason's code and message listed, exit 1."""
    assert main(["status"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("Cache: NOT trustworthy\n")
    assert "✗ worker_down: the worker has never run against this database" in out
    assert "✗ backfill_incomplete:" in out
    assert "✗ subscriptions_missing:" in out
    assert ANSI not in out


def test_status_of_a_healthy_service_is_trustworthy_with_its_figures(
    cli: OpsApi, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every rule satisfied: trustworthy, exit 0, and the jobs, receipts and failures shown."""
    _healthy(cli)
    _submit(cli)
    receipt_id = _fail_with_alegra_refusal(cli)
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Cache: trustworthy\n")
    assert "Worker     pid 4242, heartbeat" in out
    assert "reconcile     success" in out
    assert "Receipts   failed 1" in out
    assert f"failed {receipt_id}" in out
    assert "bill: Rejected 400 code 3061: El número de comprobante ya existe" in out


def test_status_json_is_the_endpoints_answer(
    cli: OpsApi, capsys: pytest.CaptureFixture[str]
) -> None:
    """`status --json` gives the figures and verdict `GET /v1/cache/status` gives."""
    main(["status", "--json"])
    printed: dict[str, Any] = json.loads(capsys.readouterr().out)
    served = cli.get("/v1/cache/status").json()
    assert printed.keys() == served.keys()
    assert (printed["trustworthy"], printed["reasons"]) == (served["trustworthy"],
                                                             served["reasons"])


def test_a_missing_database_is_named_not_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Pointed at no file, the command says so in one line and creates nothing."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SECRET_KEY", SECRET_KEY)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'nothing.db'}")
    assert main(["status"]) == 2
    assert "no database at" in capsys.readouterr().err
    assert not (tmp_path / "nothing.db").exists()


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colour_only_on_a_terminal_and_never_with_no_color() -> None:
    """Colour on a terminal; not on a pipe or file; not when NO_COLOR is set to anything."""
    assert colour_wanted(_Terminal(), environ={}) is True
    assert colour_wanted(io.StringIO(), environ={}) is False
    assert colour_wanted(_Terminal(), environ={"NO_COLOR": "1"}) is False
    assert colour_wanted(_Terminal(), environ={"NO_COLOR": ""}) is True


def test_the_coloured_forms_carry_ansi_codes_and_the_plain_ones_none(ops: OpsApi) -> None:
    """The same figures render with ANSI codes when painting and without when not."""
    status = ops.get("/v1/cache/status").json()
    now = datetime.now(UTC)
    assert ANSI in format_status(status, now, Paint(True))
    assert ANSI not in format_status(status, now, Paint(False))
    receipt = ops.get(f"/v1/receipts/{_submit(ops)}").json()
    assert ANSI in format_receipt(receipt, {}, now, Paint(True))
    assert ANSI not in format_receipt(receipt, {}, now, Paint(False))
