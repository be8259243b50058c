-- `alegra-sync doctor` (issue 15): each company's latest findings, and what it learned.
-- Portable SQL (SQLite and PostgreSQL): TEXT keys and ISO-8601 UTC TEXT times written by Python.

-- The latest verdict per check (a new run replaces the company's rows).
CREATE TABLE doctor_findings (
    company_id  TEXT NOT NULL,
    check_name  TEXT NOT NULL,                 -- sync.doctor.Check
    guess       TEXT NOT NULL,
    verdict     TEXT NOT NULL,                 -- confirmed | contradicted | no evidence
    evidence    TEXT NOT NULL,
    checked_at  TEXT NOT NULL,
    ran_by      TEXT NOT NULL,                 -- command | backfill
    PRIMARY KEY (company_id, check_name)
);

-- What the company's own data showed instead of a built-in guess; the service writes that
-- company's contacts and bills this way until `alegra-sync doctor --forget` drops it.
CREATE TABLE doctor_learned (
    company_id    TEXT NOT NULL,
    setting       TEXT NOT NULL,               -- sync.learned: identification_type.RNC, ncf_field, ...
    setting_value TEXT NOT NULL,
    evidence      TEXT NOT NULL,
    learned_at    TEXT NOT NULL,
    PRIMARY KEY (company_id, setting)
);
