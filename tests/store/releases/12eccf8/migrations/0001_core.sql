-- Core schema. Every cached Alegra row records where it came from (source: backfill | webhook |
-- reconcile | receipt | poll) and when Alegra last confirmed it (confirmed_at). Ids from Alegra are
-- TEXT: they are strings and may be UUIDs. Timestamps are ISO-8601 UTC text (db.utcnow()).

CREATE TABLE partners (
    id          TEXT PRIMARY KEY,              -- 'ptn_' + hex
    name        TEXT NOT NULL UNIQUE,
    key_hash    TEXT NOT NULL UNIQUE,          -- sha256 hex of the key; the key itself is never stored
    key_prefix  TEXT NOT NULL,                 -- first characters, to tell keys apart in listings
    is_admin    INTEGER NOT NULL DEFAULT 0,
    created_at  TEXT NOT NULL,
    revoked_at  TEXT
);

CREATE TABLE contacts (
    alegra_id     TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    name_key      TEXT NOT NULL,               -- names.name_key(name): matching without tax id
    tax_id        TEXT,                        -- digits only (dominican.normalize_tax_id), NULL if none/invalid
    id_type       TEXT,                        -- RNC | CED | other as Alegra says
    types         TEXT NOT NULL DEFAULT '[]',  -- JSON array: ["provider"], ["client","provider"], ...
    status        TEXT,                        -- active | inactive
    email         TEXT,
    phone         TEXT,
    raw           TEXT NOT NULL,               -- the contact as Alegra's REST API returned it (JSON)
    source        TEXT NOT NULL,
    deleted       INTEGER NOT NULL DEFAULT 0,
    confirmed_at  TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
CREATE INDEX contacts_by_tax_id ON contacts(tax_id) WHERE deleted = 0;
CREATE INDEX contacts_by_name_key ON contacts(name_key) WHERE deleted = 0;

CREATE TABLE accounts (
    alegra_id     TEXT PRIMARY KEY,
    parent_id     TEXT,
    name          TEXT NOT NULL,
    name_key      TEXT NOT NULL,
    code          TEXT,
    type          TEXT,                        -- expense, income, asset, ...
    nature        TEXT,
    status        TEXT,
    read_only     INTEGER NOT NULL DEFAULT 0,
    is_leaf       INTEGER NOT NULL DEFAULT 1,
    raw           TEXT NOT NULL,
    source        TEXT NOT NULL,
    deleted       INTEGER NOT NULL DEFAULT 0,  -- gone from the chart at the last complete poll
    confirmed_at  TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
CREATE INDEX accounts_by_name_key ON accounts(type, name_key) WHERE deleted = 0;

CREATE TABLE taxes (
    alegra_id     TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    percentage    TEXT,                        -- decimal as text, e.g. '18.00'
    type          TEXT,
    status        TEXT,
    raw           TEXT NOT NULL,
    source        TEXT NOT NULL,
    deleted       INTEGER NOT NULL DEFAULT 0,
    confirmed_at  TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);

CREATE TABLE receipts (
    id               TEXT PRIMARY KEY,         -- 'rcp_' + hex
    partner_id       TEXT NOT NULL REFERENCES partners(id),
    idempotency_key  TEXT NOT NULL,
    body_hash        TEXT NOT NULL,            -- sha256 of the canonical request body
    payload          TEXT NOT NULL,            -- the validated receipt (JSON, decimals as strings)
    status           TEXT NOT NULL,            -- queued | processing | completed | failed | duplicate
    supplier_tax_id  TEXT,
    supplier_name    TEXT,
    ncf              TEXT,
    ncf_type         TEXT,
    receipt_date     TEXT NOT NULL,
    total            TEXT,
    currency         TEXT NOT NULL DEFAULT 'DOP',
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TEXT,                     -- not before; NULL = now
    lease_until      TEXT,                     -- a worker holds it until then (crash → expires)
    error            TEXT,                     -- JSON {step, status, code, message, retryable}
    flags            TEXT NOT NULL DEFAULT '[]',  -- JSON list of notes, e.g. likely_duplicate
    bill_id          TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    completed_at     TEXT,
    UNIQUE (partner_id, idempotency_key)
);
CREATE INDEX receipts_ready ON receipts(status, next_attempt_at);
CREATE INDEX receipts_by_partner ON receipts(partner_id, created_at);

-- One row per step of the flow: supplier, account:<name_key>, bill, attachment.
-- state: pending → attempting (a write was sent; outcome unknown until answered) → done | failed.
CREATE TABLE receipt_steps (
    receipt_id  TEXT NOT NULL REFERENCES receipts(id),
    step        TEXT NOT NULL,
    state       TEXT NOT NULL,
    outcome     TEXT,                          -- found | created | updated | skipped
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
    size          INTEGER NOT NULL,
    data          BLOB NOT NULL
);

-- Webhook deliveries, committed before the 2xx. shape: ok | malformed | unknown.
-- state: received → applied | skipped | failed (retried with backoff) → parked.
CREATE TABLE inbox (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at      TEXT NOT NULL,
    subject          TEXT,
    resource         TEXT,                     -- client | bill | item | invoice
    resource_id      TEXT,
    body             BLOB NOT NULL,
    shape            TEXT NOT NULL,
    state            TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TEXT,
    last_error       TEXT,
    applied_at       TEXT
);
CREATE INDEX inbox_pending ON inbox(state, next_attempt_at);
CREATE INDEX inbox_by_resource ON inbox(resource, resource_id);

CREATE TABLE webhook_handshakes (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at  TEXT NOT NULL,
    key_index    INTEGER NOT NULL              -- which SECRET_KEY (0 = newest) signed the URL
);

CREATE TABLE subscriptions (
    event            TEXT PRIMARY KEY,
    alegra_id        TEXT,
    url_key_index    INTEGER,                  -- which secret key made the URL (never the URL itself)
    present          INTEGER NOT NULL DEFAULT 0,
    created_at       TEXT,
    last_checked_at  TEXT,
    recreated_count  INTEGER NOT NULL DEFAULT 0,
    missing_since    TEXT
);

-- Bills known to exist in Alegra: created here, or learned through webhooks / backfill.
CREATE TABLE bills (
    alegra_id        TEXT PRIMARY KEY,
    provider_id      TEXT,
    provider_tax_id  TEXT,
    ncf_key          TEXT,                     -- normalised NCF / number, NULL if none
    bill_date        TEXT,
    total            TEXT,
    status           TEXT,                     -- open | closed | void | draft ... as Alegra says
    receipt_id       TEXT,
    raw              TEXT NOT NULL,
    source           TEXT NOT NULL,
    deleted          INTEGER NOT NULL DEFAULT 0,
    confirmed_at     TEXT NOT NULL,
    updated_at       TEXT NOT NULL
);
CREATE INDEX bills_by_ncf ON bills(provider_tax_id, ncf_key) WHERE deleted = 0;
CREATE INDEX bills_by_receipt ON bills(receipt_id);

-- Scheduled jobs: backfill, accounts, reconcile, subscriptions, bills.
CREATE TABLE jobs (
    name              TEXT PRIMARY KEY,
    checkpoint        TEXT,                    -- JSON, job-specific (e.g. next start offset)
    last_started_at   TEXT,
    last_finished_at  TEXT,
    last_outcome      TEXT,                    -- success | incomplete | failed
    last_duration_s   REAL,
    last_error        TEXT,
    next_run_at       TEXT
);

CREATE TABLE job_runs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT NOT NULL,
    started_at   TEXT NOT NULL,
    finished_at  TEXT,
    outcome      TEXT,
    detail       TEXT NOT NULL DEFAULT '{}'
);

CREATE TABLE drift_reports (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    job_run_id  INTEGER REFERENCES job_runs(id),
    created_at  TEXT NOT NULL,
    complete    INTEGER NOT NULL,
    missing     INTEGER NOT NULL,
    extra       INTEGER NOT NULL,
    different   INTEGER NOT NULL,
    detail      TEXT NOT NULL DEFAULT '{}'
);

-- The worker's heartbeat and a snapshot of its rate budget, for /readyz and /v1/cache/status.
CREATE TABLE worker_state (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    pid         INTEGER,
    beat_at     TEXT NOT NULL,
    budget      TEXT NOT NULL DEFAULT '{}'
);
