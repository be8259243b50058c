"""The states of receipts, steps, inbox rows and job runs: one StrEnum each, values as stored."""

from __future__ import annotations

import sqlite3

from receiver.app import COMPONENTS
from receiver.openapi import build_spec
from sync.states import InboxState, JobOutcome, ReceiptStatus, StepState


def test_the_stored_values_do_not_change() -> None:
    """The databases and the API clients of every release hold these exact words."""
    assert [s.value for s in ReceiptStatus] == [
        "queued", "processing", "completed", "failed", "duplicate"]
    assert [s.value for s in StepState] == ["attempting", "done", "failed"]
    assert [s.value for s in InboxState] == ["received", "applied", "skipped", "failed", "parked"]
    assert [s.value for s in JobOutcome] == ["success", "incomplete", "failed"]


def test_the_spec_publishes_the_states_the_code_has() -> None:
    """The published enums are the StrEnums' values, so no state is listed that nothing writes
    (the step state `pending` was)."""
    schemas = build_spec(COMPONENTS)["components"]["schemas"]
    assert schemas["ReceiptStep"]["properties"]["state"]["enum"] == [s.value for s in StepState]
    assert schemas["Receipt"]["properties"]["status"]["enum"] == [s.value for s in ReceiptStatus]


def test_a_state_is_stored_and_read_back_as_its_plain_word() -> None:
    """SQLite stores a member as its text; the text read back equals the member."""
    conn = sqlite3.connect(":memory:")
    stored = conn.execute("SELECT ?, typeof(?)", (ReceiptStatus.QUEUED,) * 2).fetchone()
    conn.close()
    assert stored == ("queued", "text")
    assert stored[0] == ReceiptStatus.QUEUED
    assert stored[0] in {ReceiptStatus.QUEUED}
