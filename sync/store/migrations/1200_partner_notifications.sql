-- Partner notifications (Standard Webhooks 1.0): a partner's endpoints, the events written in
-- the same transaction as the change they report, and one delivery row per (event, endpoint),
-- which is the outbox: the worker's notifier sends what is due and records each attempt on it.
-- Portable SQL (SQLite and PostgreSQL): TEXT ids made in Python, ISO-8601 UTC text times.

CREATE TABLE webhook_endpoints (
    id                     TEXT PRIMARY KEY,   -- 'whe_' + hex
    partner_id             TEXT NOT NULL REFERENCES partners(id),
    url                    TEXT NOT NULL,
    events                 TEXT NOT NULL,      -- JSON list of event types; [] = every type
    secret_enc             TEXT NOT NULL,      -- Fernet token under CREDENTIALS_KEY; never in clear
    old_secret_enc         TEXT,               -- the secret a rotation replaced, signing beside it
    old_secret_expires_at  TEXT,               -- ... until then
    state                  TEXT NOT NULL,      -- enabled | disabled | deleted
    state_reason           TEXT,
    failing_since          TEXT,               -- first failed attempt since the last success
    created_at             TEXT NOT NULL,
    updated_at             TEXT NOT NULL
);
CREATE INDEX webhook_endpoints_by_partner ON webhook_endpoints(partner_id, state);

CREATE TABLE notification_events (
    id          TEXT PRIMARY KEY,   -- 'msg_' + hex: the `webhook-id` of every delivery of it
    partner_id  TEXT NOT NULL REFERENCES partners(id),
    company_id  TEXT,               -- NULL for a ping
    receipt_id  TEXT,               -- the receipt it is about (NULL for a ping)
    seq         INTEGER NOT NULL,   -- its place among the receipt's events (1, 2, ...)
    type        TEXT NOT NULL,
    body        TEXT NOT NULL,      -- the JSON body, exactly as sent and signed
    created_at  TEXT NOT NULL
);
CREATE INDEX notification_events_by_receipt ON notification_events(receipt_id, seq);

CREATE TABLE notification_deliveries (
    id               TEXT PRIMARY KEY,   -- 'dlv_' + hex
    event_id         TEXT NOT NULL REFERENCES notification_events(id),
    endpoint_id      TEXT NOT NULL REFERENCES webhook_endpoints(id),
    company_id       TEXT,
    receipt_id       TEXT,               -- copied from the event: the order is kept per receipt
    seq              INTEGER NOT NULL,
    state            TEXT NOT NULL,      -- pending | delivered | failed
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TEXT,               -- pending: due then (pushed ahead while an attempt runs)
    last_attempt_at  TEXT,
    last_status      INTEGER,            -- the endpoint's HTTP status (NULL: no answer)
    last_latency_ms  INTEGER,
    last_error       TEXT,
    delivered_at     TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL
);
CREATE INDEX notification_deliveries_due ON notification_deliveries(state, next_attempt_at);
CREATE INDEX notification_deliveries_in_order
    ON notification_deliveries(endpoint_id, receipt_id, seq, state);
CREATE INDEX notification_deliveries_by_endpoint
    ON notification_deliveries(endpoint_id, created_at);
CREATE INDEX notification_deliveries_by_company ON notification_deliveries(company_id);
CREATE INDEX notification_deliveries_settled ON notification_deliveries(state, updated_at);
CREATE INDEX notification_events_by_time ON notification_events(created_at);
CREATE INDEX notification_events_by_company ON notification_events(company_id);
