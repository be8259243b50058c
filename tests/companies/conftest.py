"""The CLI's environment for the company commands, a file's bytes to grep, and rows in every
per-company table (raw SQL: the purge test needs one of each, whatever the store writes)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from sync.cli import main

SECRET_KEY = "companies-secret-key-0123456789"
KEY_A = Fernet.generate_key().decode()
KEY_B = Fernet.generate_key().decode()
TOKEN = "tok-7f3a9c2e51d84b60a1"  # distinctive: grepped for in files, logs and answers
UNSET = ("ALEGRA_EMAIL", "ALEGRA_TOKEN", "ALEGRA_BASE_URL", "CREDENTIALS_KEY", "PUBLIC_URL",
         "LOG_LEVEL")


def cli(*argv: str) -> int:
    """`alegra-sync ARGV` in this process (its output left to capsys)."""
    return main(list(argv))


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Settings from variables, no Alegra credentials, CREDENTIALS_KEY = KEY_A, working
    directory without a .env; the database is `db` in it."""
    monkeypatch.chdir(tmp_path)
    for name in UNSET:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SECRET_KEY", SECRET_KEY)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/c.db")
    monkeypatch.setenv("CREDENTIALS_KEY", KEY_A)
    monkeypatch.setenv("LOG_FORMAT", "json")
    return tmp_path


def stored_bytes(database: Path) -> bytes:
    """The database file and its -wal, as they are on disk."""
    files = [database, database.with_name(database.name + "-wal")]
    return b"".join(f.read_bytes() for f in files if f.exists())


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


PER_COMPANY = ("contacts", "accounts", "taxes", "bills", "receipts", "bill_claims", "inbox",
               "webhook_handshakes", "subscriptions", "jobs", "job_runs", "drift_reports",
               "notification_events", "notification_deliveries")
_SEED = (
    "INSERT INTO contacts(alegra_id, name, name_key, raw, source, confirmed_at, updated_at,"
    " company_id) VALUES ('1', 'A', 'a', '{}', 'backfill', :t, :t, :c)",
    "INSERT INTO accounts(alegra_id, name, name_key, raw, source, confirmed_at, updated_at,"
    " company_id) VALUES ('1', 'A', 'a', '{}', 'poll', :t, :t, :c)",
    "INSERT INTO taxes(alegra_id, name, raw, source, confirmed_at, updated_at, company_id)"
    " VALUES ('1', 'ITBIS', '{}', 'backfill', :t, :t, :c)",
    "INSERT INTO bills(alegra_id, raw, source, confirmed_at, updated_at, company_id)"
    " VALUES ('1', '{}', 'receipt', :t, :t, :c)",
    "INSERT INTO receipts(id, partner_id, idempotency_key, body_hash, payload, status,"
    " receipt_date, created_at, updated_at, company_id) VALUES ('rcp_' || :c, :p, 'k', 'h', '{}',"
    " 'completed', '2024-05-01', :t, :t, :c)",
    "INSERT INTO receipt_steps(receipt_id, step, state, updated_at)"
    " VALUES ('rcp_' || :c, 'bill', 'done', :t)",
    "INSERT INTO receipt_attachments(receipt_id, filename, content_type, size, data)"
    " VALUES ('rcp_' || :c, 'r.jpg', 'image/jpeg', 1, x'ff')",
    "INSERT INTO bill_claims(claim_key, receipt_id, claimed_at, company_id)"
    " VALUES ('131246796|B0100000001', 'rcp_' || :c, :t, :c)",
    "INSERT INTO inbox(received_at, body, shape, state, company_id)"
    " VALUES (:t, x'7b7d', 'ok', 'received', :c)",
    "INSERT INTO webhook_handshakes(received_at, key_index, company_id) VALUES (:t, 0, :c)",
    "INSERT INTO subscriptions(event, company_id) VALUES ('new-client', :c)",
    "INSERT INTO jobs(name, company_id) VALUES ('backfill', :c)",
    "INSERT INTO job_runs(name, started_at, company_id) VALUES ('backfill', :t, :c)",
    "INSERT INTO drift_reports(job_run_id, created_at, complete, missing, extra, different,"
    " company_id) VALUES (last_insert_rowid(), :t, 1, 0, 0, 0, :c)",
    "INSERT INTO webhook_endpoints(id, partner_id, url, events, secret_enc, state, created_at,"
    " updated_at) VALUES ('whe_' || :c, :p, 'https://x.example', '[]', 'x', 'enabled', :t, :t)",
    "INSERT INTO notification_events(id, partner_id, company_id, receipt_id, seq, type, body,"
    " created_at) VALUES ('msg_' || :c, :p, :c, 'rcp_' || :c, 1, 'receipt.completed', '{}', :t)",
    "INSERT INTO notification_deliveries(id, event_id, endpoint_id, company_id, receipt_id, seq,"
    " state, created_at, updated_at) VALUES ('dlv_' || :c, 'msg_' || :c, 'whe_' || :c, :c,"
    " 'rcp_' || :c, 1, 'pending', :t, :t)",
    "INSERT OR IGNORE INTO partner_grants(partner_id, company_id, granted_at)"
    " VALUES (:p, :c, :t)",
)


def seed_rows(database: Path, company: str, partner_id: str) -> None:
    """One row of `company` in every per-company table (and a grant to `partner_id`)."""
    with sqlite3.connect(database) as conn:
        conn.execute("PRAGMA foreign_keys = ON")
        for statement in _SEED:
            conn.execute(statement, {"c": company, "p": partner_id,
                                     "t": "2026-12-01T00:00:00+00:00"})


def rows_of(database: Path, company: str) -> dict[str, int]:
    """How many rows `company` has in each per-company table, receipt files and grants too."""
    with sqlite3.connect(database) as conn:
        counts = {table: conn.execute(f"SELECT count(*) FROM {table} WHERE company_id = ?",  # noqa: S608
                                      (company,)).fetchone()[0] for table in PER_COMPANY}
        for child in ("receipt_steps", "receipt_attachments"):
            counts[child] = conn.execute(
                f"SELECT count(*) FROM {child} WHERE receipt_id IN"  # noqa: S608
                " (SELECT id FROM receipts WHERE company_id = ?)", (company,)).fetchone()[0]
        counts["partner_grants"] = conn.execute(
            "SELECT count(*) FROM partner_grants WHERE company_id = ?", (company,)).fetchone()[0]
    return counts
