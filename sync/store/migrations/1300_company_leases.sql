-- Many workers on one database (issue 13): each rate budget, and so each company, has one
-- holder at a time. A lease row is one Alegra user (the companies that share its rate budget,
-- `lease_key` a digest of base URL and e-mail); its holder is a worker id "host:pid:random" of
-- `workers`, and it is the holder's while `expires_at` (UTC text, written by the holder) has not
-- passed. Taking a lease is one compare-and-set UPDATE (sync/store/leases.py). Portable SQL: the
-- same statements run on SQLite and PostgreSQL.

CREATE TABLE workers (
    id          TEXT PRIMARY KEY,      -- host:pid:random, new for every worker start
    host        TEXT NOT NULL,
    pid         INTEGER NOT NULL,
    started_at  TEXT NOT NULL,
    beat_at     TEXT NOT NULL,
    expires_at  TEXT NOT NULL          -- beat_at + WORKER_LEASE_S: live until then
);

CREATE TABLE company_leases (
    lease_key   TEXT PRIMARY KEY,      -- the Alegra user's digest (one rate budget)
    holder      TEXT,                  -- a workers.id; NULL: free
    expires_at  TEXT,                  -- the holder's until then; NULL: free
    acquired_at TEXT,
    companies   TEXT NOT NULL DEFAULT '[]'  -- JSON list of the company ids it covers (status)
);
CREATE INDEX company_leases_by_holder ON company_leases(holder);
