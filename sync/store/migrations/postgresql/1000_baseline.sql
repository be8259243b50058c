-- PostgreSQL: the schema a SQLite database has after every shared migration up to 1000, in one
-- step (sync/store/migrate.py records it as each of those versions). Same tables, columns,
-- indexes and foreign keys; types as SQLite stores them: INTEGER (64-bit rows ids: BIGINT),
-- REAL as DOUBLE PRECISION (SQLite's REAL is 8 bytes), BLOB as BYTEA, AUTOINCREMENT ids as
-- identities. Comments on the columns' meaning are in the shared migrations.

CREATE TABLE partners (
    id                  TEXT PRIMARY KEY,
    name                TEXT NOT NULL UNIQUE,
    key_hash            TEXT NOT NULL UNIQUE,
    key_prefix          TEXT NOT NULL,
    is_admin            INTEGER NOT NULL DEFAULT 0,
    created_at          TEXT NOT NULL,
    revoked_at          TEXT,
    old_key_hash        TEXT,
    old_key_prefix      TEXT,
    old_key_expires_at  TEXT,
    rotated_at          TEXT
);
CREATE UNIQUE INDEX partners_by_old_key ON partners(old_key_hash) WHERE old_key_hash IS NOT NULL;

CREATE TABLE companies (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    email         TEXT,
    token_enc     TEXT,
    base_url      TEXT,
    state         TEXT NOT NULL DEFAULT 'active',
    state_reason  TEXT,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
INSERT INTO companies(id, name, created_at, updated_at)
VALUES ('default', 'default',
        to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'),
        to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'));

CREATE TABLE partner_grants (
    partner_id  TEXT NOT NULL REFERENCES partners(id),
    company_id  TEXT NOT NULL REFERENCES companies(id),
    granted_at  TEXT NOT NULL,
    PRIMARY KEY (partner_id, company_id)
);

CREATE TABLE contacts (
    alegra_id     TEXT NOT NULL,
    name          TEXT NOT NULL,
    name_key      TEXT NOT NULL,
    tax_id        TEXT,
    id_type       TEXT,
    types         TEXT NOT NULL DEFAULT '[]',
    status        TEXT,
    email         TEXT,
    phone         TEXT,
    raw           TEXT NOT NULL,
    source        TEXT NOT NULL,
    deleted       INTEGER NOT NULL DEFAULT 0,
    confirmed_at  TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    company_id    TEXT NOT NULL DEFAULT 'default',
    PRIMARY KEY (company_id, alegra_id)
);
CREATE INDEX contacts_by_tax_id ON contacts(company_id, tax_id) WHERE deleted = 0;
CREATE INDEX contacts_by_name_key ON contacts(company_id, name_key) WHERE deleted = 0;
CREATE INDEX contacts_deleted ON contacts(company_id, alegra_id) WHERE deleted = 1;

CREATE TABLE accounts (
    alegra_id     TEXT NOT NULL,
    parent_id     TEXT,
    name          TEXT NOT NULL,
    name_key      TEXT NOT NULL,
    code          TEXT,
    type          TEXT,
    nature        TEXT,
    status        TEXT,
    read_only     INTEGER NOT NULL DEFAULT 0,
    is_leaf       INTEGER NOT NULL DEFAULT 1,
    raw           TEXT NOT NULL,
    source        TEXT NOT NULL,
    deleted       INTEGER NOT NULL DEFAULT 0,
    confirmed_at  TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    company_id    TEXT NOT NULL DEFAULT 'default',
    PRIMARY KEY (company_id, alegra_id)
);
CREATE INDEX accounts_by_name_key ON accounts(company_id, type, name_key) WHERE deleted = 0;
CREATE INDEX accounts_deleted ON accounts(company_id, alegra_id) WHERE deleted = 1;

CREATE TABLE taxes (
    alegra_id     TEXT NOT NULL,
    name          TEXT NOT NULL,
    percentage    TEXT,
    type          TEXT,
    status        TEXT,
    raw           TEXT NOT NULL,
    source        TEXT NOT NULL,
    deleted       INTEGER NOT NULL DEFAULT 0,
    confirmed_at  TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    company_id    TEXT NOT NULL DEFAULT 'default',
    PRIMARY KEY (company_id, alegra_id)
);
CREATE INDEX taxes_deleted ON taxes(company_id, alegra_id) WHERE deleted = 1;
CREATE INDEX taxes_live ON taxes(company_id, alegra_id) WHERE deleted = 0;

CREATE TABLE bills (
    alegra_id        TEXT NOT NULL,
    provider_id      TEXT,
    provider_tax_id  TEXT,
    ncf_key          TEXT,
    bill_date        TEXT,
    total            TEXT,
    status           TEXT,
    receipt_id       TEXT,
    raw              TEXT NOT NULL,
    source           TEXT NOT NULL,
    deleted          INTEGER NOT NULL DEFAULT 0,
    confirmed_at     TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    company_id       TEXT NOT NULL DEFAULT 'default',
    PRIMARY KEY (company_id, alegra_id)
);
CREATE INDEX bills_by_ncf ON bills(company_id, provider_tax_id, ncf_key) WHERE deleted = 0;
CREATE INDEX bills_by_receipt ON bills(receipt_id);
CREATE INDEX bills_by_ncf_key ON bills(company_id, ncf_key) WHERE deleted = 0;
CREATE INDEX bills_by_date ON bills(company_id, bill_date) WHERE deleted = 0;
CREATE INDEX bills_deleted ON bills(company_id, alegra_id) WHERE deleted = 1;

CREATE TABLE receipts (
    id               TEXT PRIMARY KEY,
    partner_id       TEXT NOT NULL REFERENCES partners(id),
    idempotency_key  TEXT NOT NULL,
    body_hash        TEXT NOT NULL,
    payload          TEXT NOT NULL,
    status           TEXT NOT NULL,
    supplier_tax_id  TEXT,
    supplier_name    TEXT,
    ncf              TEXT,
    ncf_type         TEXT,
    receipt_date     TEXT NOT NULL,
    total            TEXT,
    currency         TEXT NOT NULL DEFAULT 'DOP',
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TEXT,
    lease_until      TEXT,
    error            TEXT,
    flags            TEXT NOT NULL DEFAULT '[]',
    bill_id          TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    completed_at     TEXT,
    lease_owner      TEXT,
    retried_at       TEXT,
    company_id       TEXT NOT NULL DEFAULT 'default',
    UNIQUE (partner_id, company_id, idempotency_key)
);
CREATE INDEX receipts_ready ON receipts(status, next_attempt_at);
CREATE INDEX receipts_company_ready ON receipts(company_id, status, next_attempt_at);
CREATE INDEX receipts_by_partner ON receipts(partner_id, created_at);
CREATE INDEX receipts_by_company ON receipts(company_id, created_at);
CREATE INDEX receipts_by_date ON receipts(company_id, receipt_date);
CREATE INDEX receipts_by_bill ON receipts(bill_id) WHERE bill_id IS NOT NULL;

CREATE TABLE receipt_steps (
    receipt_id  TEXT NOT NULL REFERENCES receipts(id),
    step        TEXT NOT NULL,
    state       TEXT NOT NULL,
    outcome     TEXT,
    alegra_id   TEXT,
    detail      TEXT NOT NULL DEFAULT '{}',
    attempts    INTEGER NOT NULL DEFAULT 0,
    started_at  TEXT,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (receipt_id, step)
);

CREATE TABLE receipt_attachments (
    receipt_id    TEXT PRIMARY KEY REFERENCES receipts(id),
    filename      TEXT NOT NULL,
    content_type  TEXT NOT NULL,
    size          BIGINT NOT NULL,
    data          BYTEA NOT NULL
);

CREATE TABLE bill_claims (
    claim_key   TEXT NOT NULL,
    receipt_id  TEXT NOT NULL REFERENCES receipts(id),
    claimed_at  TEXT NOT NULL,
    company_id  TEXT NOT NULL DEFAULT 'default',
    PRIMARY KEY (company_id, claim_key)
);

CREATE TABLE inbox (
    id               BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    received_at      TEXT NOT NULL,
    subject          TEXT,
    resource         TEXT,
    resource_id      TEXT,
    body             BYTEA NOT NULL,
    shape            TEXT NOT NULL,
    state            TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TEXT,
    last_error       TEXT,
    applied_at       TEXT,
    key_index        INTEGER,
    company_id       TEXT NOT NULL DEFAULT 'default'
);
CREATE INDEX inbox_pending ON inbox(state, next_attempt_at);
CREATE INDEX inbox_by_resource ON inbox(resource, resource_id);
CREATE INDEX inbox_unusable ON inbox(state) WHERE shape != 'ok';
CREATE INDEX inbox_company_pending ON inbox(company_id, state, next_attempt_at);

CREATE TABLE webhook_handshakes (
    id           BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    received_at  TEXT NOT NULL,
    key_index    INTEGER NOT NULL,
    company_id   TEXT NOT NULL DEFAULT 'default'
);

CREATE TABLE subscriptions (
    event            TEXT NOT NULL,
    alegra_id        TEXT,
    url_key_index    INTEGER,
    present          INTEGER NOT NULL DEFAULT 0,
    created_at       TEXT,
    last_checked_at  TEXT,
    recreated_count  INTEGER NOT NULL DEFAULT 0,
    missing_since    TEXT,
    company_id       TEXT NOT NULL DEFAULT 'default',
    PRIMARY KEY (company_id, event)
);

CREATE TABLE jobs (
    name              TEXT NOT NULL,
    checkpoint        TEXT,
    last_started_at   TEXT,
    last_finished_at  TEXT,
    last_outcome      TEXT,
    last_duration_s   DOUBLE PRECISION,
    last_error        TEXT,
    next_run_at       TEXT,
    owner             TEXT,
    lease_until       TEXT,
    company_id        TEXT NOT NULL DEFAULT 'default',
    PRIMARY KEY (company_id, name)
);

CREATE TABLE job_runs (
    id           BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    name         TEXT NOT NULL,
    started_at   TEXT NOT NULL,
    finished_at  TEXT,
    outcome      TEXT,
    detail       TEXT NOT NULL DEFAULT '{}',
    duration_s   DOUBLE PRECISION,
    error        TEXT,
    company_id   TEXT NOT NULL DEFAULT 'default'
);
CREATE INDEX job_runs_by_name ON job_runs(company_id, name, id);

CREATE TABLE drift_reports (
    id          BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    job_run_id  BIGINT REFERENCES job_runs(id),
    created_at  TEXT NOT NULL,
    complete    INTEGER NOT NULL,
    missing     INTEGER NOT NULL,
    extra       INTEGER NOT NULL,
    different   INTEGER NOT NULL,
    detail      TEXT NOT NULL DEFAULT '{}',
    company_id  TEXT NOT NULL DEFAULT 'default'
);

CREATE TABLE worker_state (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    pid      INTEGER,
    beat_at  TEXT NOT NULL,
    budget   TEXT NOT NULL DEFAULT '{}'
);

CREATE TABLE metric_counters (
    name        TEXT NOT NULL,
    labels      TEXT NOT NULL,
    value       DOUBLE PRECISION NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (name, labels)
);
