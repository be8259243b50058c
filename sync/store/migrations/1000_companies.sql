-- Many Alegra companies in one deployment. A company is one Alegra account; the account
-- configured in the environment (or the simulator) is the company 'default', so every row stored
-- before this migration belongs to it. Tables whose keys were Alegra ids (unique only within one
-- account) are rebuilt with the company in the key; the others gain a company_id column.
-- `Database.migrate` runs migrations with foreign keys off and checks them before COMMIT (the
-- documented way to rebuild a table that others reference).

CREATE TABLE companies (
    id          TEXT PRIMARY KEY,              -- slug of the name; 'default' = the environment's account
    name        TEXT NOT NULL,
    email       TEXT,                          -- NULL for 'default': it comes from the environment
    token_enc   TEXT,                          -- Fernet token under CREDENTIALS_KEY; never in clear
    base_url    TEXT,                          -- NULL: the deployment's ALEGRA_BASE_URL
    state       TEXT NOT NULL DEFAULT 'active',  -- active | needs_attention | removed
    state_reason TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
INSERT INTO companies(id, name, created_at, updated_at)
VALUES ('default', 'default', strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'),
        strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'));

-- Which companies a partner key may reach (an admin key reaches every one).
CREATE TABLE partner_grants (
    partner_id  TEXT NOT NULL REFERENCES partners(id),
    company_id  TEXT NOT NULL REFERENCES companies(id),
    granted_at  TEXT NOT NULL,
    PRIMARY KEY (partner_id, company_id)
);
INSERT INTO partner_grants(partner_id, company_id, granted_at)
SELECT id, 'default', created_at FROM partners;

-- The cache: keyed by (company, Alegra id).
CREATE TABLE contacts_new (
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
INSERT INTO contacts_new SELECT *, 'default' FROM contacts;
DROP TABLE contacts;
ALTER TABLE contacts_new RENAME TO contacts;
CREATE INDEX contacts_by_tax_id ON contacts(company_id, tax_id) WHERE deleted = 0;
CREATE INDEX contacts_by_name_key ON contacts(company_id, name_key) WHERE deleted = 0;
CREATE INDEX contacts_deleted ON contacts(company_id, alegra_id) WHERE deleted = 1;

CREATE TABLE accounts_new (
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
INSERT INTO accounts_new SELECT *, 'default' FROM accounts;
DROP TABLE accounts;
ALTER TABLE accounts_new RENAME TO accounts;
CREATE INDEX accounts_by_name_key ON accounts(company_id, type, name_key) WHERE deleted = 0;
CREATE INDEX accounts_deleted ON accounts(company_id, alegra_id) WHERE deleted = 1;

CREATE TABLE taxes_new (
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
INSERT INTO taxes_new SELECT *, 'default' FROM taxes;
DROP TABLE taxes;
ALTER TABLE taxes_new RENAME TO taxes;
CREATE INDEX taxes_deleted ON taxes(company_id, alegra_id) WHERE deleted = 1;
CREATE INDEX taxes_live ON taxes(company_id, alegra_id) WHERE deleted = 0;

CREATE TABLE bills_new (
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
INSERT INTO bills_new SELECT *, 'default' FROM bills;
DROP TABLE bills;
ALTER TABLE bills_new RENAME TO bills;
CREATE INDEX bills_by_ncf ON bills(company_id, provider_tax_id, ncf_key) WHERE deleted = 0;
CREATE INDEX bills_by_receipt ON bills(receipt_id);
CREATE INDEX bills_by_ncf_key ON bills(company_id, ncf_key) WHERE deleted = 0;
CREATE INDEX bills_by_date ON bills(company_id, bill_date) WHERE deleted = 0;
CREATE INDEX bills_deleted ON bills(company_id, alegra_id) WHERE deleted = 1;

-- Receipts: ids stay globally unique; idempotency keys are scoped per partner and company.
CREATE TABLE receipts_new (
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
INSERT INTO receipts_new SELECT *, 'default' FROM receipts;
DROP TABLE receipts;
ALTER TABLE receipts_new RENAME TO receipts;
CREATE INDEX receipts_ready ON receipts(status, next_attempt_at);
CREATE INDEX receipts_company_ready ON receipts(company_id, status, next_attempt_at);
CREATE INDEX receipts_by_partner ON receipts(partner_id, created_at);
CREATE INDEX receipts_by_company ON receipts(company_id, created_at);
CREATE INDEX receipts_by_date ON receipts(company_id, receipt_date);
CREATE INDEX receipts_by_bill ON receipts(bill_id) WHERE bill_id IS NOT NULL;

-- One bill per supplier + NCF within a company.
CREATE TABLE bill_claims_new (
    claim_key   TEXT NOT NULL,
    receipt_id  TEXT NOT NULL REFERENCES receipts(id),
    claimed_at  TEXT NOT NULL,
    company_id  TEXT NOT NULL DEFAULT 'default',
    PRIMARY KEY (company_id, claim_key)
);
INSERT INTO bill_claims_new SELECT *, 'default' FROM bill_claims;
DROP TABLE bill_claims;
ALTER TABLE bill_claims_new RENAME TO bill_claims;

CREATE TABLE subscriptions_new (
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
INSERT INTO subscriptions_new SELECT *, 'default' FROM subscriptions;
DROP TABLE subscriptions;
ALTER TABLE subscriptions_new RENAME TO subscriptions;

CREATE TABLE jobs_new (
    name              TEXT NOT NULL,
    checkpoint        TEXT,
    last_started_at   TEXT,
    last_finished_at  TEXT,
    last_outcome      TEXT,
    last_duration_s   REAL,
    last_error        TEXT,
    next_run_at       TEXT,
    owner             TEXT,
    lease_until       TEXT,
    company_id        TEXT NOT NULL DEFAULT 'default',
    PRIMARY KEY (company_id, name)
);
INSERT INTO jobs_new SELECT *, 'default' FROM jobs;
DROP TABLE jobs;
ALTER TABLE jobs_new RENAME TO jobs;

-- Tables keyed by their own row ids gain the column.
ALTER TABLE inbox ADD COLUMN company_id TEXT NOT NULL DEFAULT 'default';
CREATE INDEX inbox_company_pending ON inbox(company_id, state, next_attempt_at);
ALTER TABLE webhook_handshakes ADD COLUMN company_id TEXT NOT NULL DEFAULT 'default';
ALTER TABLE job_runs ADD COLUMN company_id TEXT NOT NULL DEFAULT 'default';
DROP INDEX job_runs_by_name;
CREATE INDEX job_runs_by_name ON job_runs(company_id, name, id);
ALTER TABLE drift_reports ADD COLUMN company_id TEXT NOT NULL DEFAULT 'default';
