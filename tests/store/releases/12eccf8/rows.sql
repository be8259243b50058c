-- Representative rows of a database in use at this release, written against its schema.
-- tests/store/test_migrations.py migrates them with the current code and checks none is lost.

INSERT INTO partners(id, name, key_hash, key_prefix, is_admin, created_at, revoked_at) VALUES
  ('ptn_a1', 'Tienda Uno', 'a3f1c2d4e5b6a7980011223344556677889900aabbccddeeff00112233445566', 'as_Ab3dE', 0,
   '2024-05-01T10:00:00.000000+00:00', NULL),
  ('ptn_ad', 'Operaciones', 'b3f1c2d4e5b6a7980011223344556677889900aabbccddeeff00112233445566', 'as_Zy9xW', 1,
   '2024-05-01T10:00:00.000000+00:00', NULL),
  ('ptn_old', 'Tienda Vieja', 'c3f1c2d4e5b6a7980011223344556677889900aabbccddeeff00112233445566', 'as_Qq1qQ', 0,
   '2024-04-01T10:00:00.000000+00:00', '2024-04-20T10:00:00.000000+00:00');

INSERT INTO contacts(alegra_id, name, name_key, tax_id, id_type, types, status, email, phone, raw,
                     source, deleted, confirmed_at, updated_at) VALUES
  ('501', 'Ferretería Ochoa, S.R.L.', 'ferreteria ochoa', '131246796', 'RNC', '["provider"]', 'active',
   NULL, NULL, '{"id":"501","name":"Ferretería Ochoa, S.R.L.","identification":"131246796"}',
   'receipt', 0, '2024-05-01T10:00:02.000000+00:00', '2024-05-01T10:00:02.000000+00:00'),
  ('502', 'Cliente Borrado', 'cliente borrado', NULL, NULL, '["client"]', 'active', NULL, NULL,
   '{"id":"502","name":"Cliente Borrado"}', 'webhook', 1, '2024-05-02T09:00:00.000000+00:00',
   '2024-05-02T09:00:00.000000+00:00');

INSERT INTO accounts(alegra_id, parent_id, name, name_key, code, type, nature, status, read_only,
                     is_leaf, raw, source, deleted, confirmed_at, updated_at) VALUES
  ('5000', NULL, 'Gastos', 'gastos', '5', 'expense', 'debit', 'active', 1, 0,
   '{"id":"5000","name":"Gastos"}', 'poll', 0, '2024-05-01T09:00:00.000000+00:00',
   '2024-05-01T09:00:00.000000+00:00'),
  ('5101', '5000', 'Gastos de ferretería', 'gastos de ferreteria', NULL, 'expense', 'debit', 'active',
   0, 1, '{"id":"5101","name":"Gastos de ferretería","idParent":"5000"}', 'receipt', 0,
   '2024-05-01T10:00:03.000000+00:00', '2024-05-01T10:00:03.000000+00:00');

INSERT INTO taxes(alegra_id, name, percentage, type, status, raw, source, deleted, confirmed_at,
                  updated_at) VALUES
  ('1', 'ITBIS', '18.00', 'ITBIS', 'active', '{"id":"1","name":"ITBIS","percentage":"18.00"}',
   'backfill', 0, '2024-05-01T09:00:00.000000+00:00', '2024-05-01T09:00:00.000000+00:00');

INSERT INTO receipts(id, partner_id, idempotency_key, body_hash, payload, status, supplier_tax_id,
                     supplier_name, ncf, ncf_type, receipt_date, total, currency, attempts,
                     next_attempt_at, lease_until, lease_owner, error, flags, bill_id, created_at,
                     updated_at, completed_at, retried_at) VALUES
  ('rcp_done', 'ptn_a1', 'key-1', 'd5e78b59097898bc2131ae6355b89009a70a7ab5c4bcd2f3c86b74c0c5b7f7a6',
   '{"version": 1, "supplier": {"name": "Ferretería Ochoa, S.R.L.", "tax_id": "131246796", "tax_id_kind": "RNC", "email": null, "phone": null}, "date": "2024-05-01", "due_date": "2024-05-01", "ncf": "B0100000001", "ncf_type": "B01", "category": "Gastos de ferretería", "currency": "DOP", "exchange_rate": null, "total": "236.00", "lines": [{"description": "Tornillos", "amount": "100.00", "quantity": "2", "tax_rate": "18", "category": "Gastos de ferretería"}], "attachment": null}',
   'completed', '131246796', 'Ferretería Ochoa, S.R.L.', 'B0100000001', 'B01', '2024-05-01',
   '236.00', 'DOP', 1, NULL, NULL, NULL, NULL, '[]', '9001', '2024-05-01T10:00:00.000000+00:00',
   '2024-05-01T10:00:05.000000+00:00', '2024-05-01T10:00:05.000000+00:00', NULL),
  ('rcp_fail', 'ptn_a1', 'key-2', 'e5e78b59097898bc2131ae6355b89009a70a7ab5c4bcd2f3c86b74c0c5b7f7a6',
   '{"version": 1, "supplier": {"name": "Ferretería Ochoa, S.R.L.", "tax_id": "131246796", "tax_id_kind": "RNC", "email": null, "phone": null}, "date": "2024-05-02", "due_date": "2024-05-02", "ncf": "B0100000002", "ncf_type": "B01", "category": "Gastos de ferretería", "currency": "DOP", "exchange_rate": null, "total": "236.00", "lines": [{"description": "Tornillos", "amount": "100.00", "quantity": "2", "tax_rate": "18", "category": "Gastos de ferretería"}], "attachment": null}',
   'failed', '131246796', 'Ferretería Ochoa, S.R.L.', 'B0100000002', 'B01', '2024-05-02', '236.00',
   'DOP', 3, NULL, NULL, NULL,
   '{"step": "bill", "kind": "Rejected", "status": 400, "code": "1001", "message": "NCF inválido", "retryable": false}',
   '[]', NULL, '2024-05-02T10:00:00.000000+00:00', '2024-05-02T10:05:00.000000+00:00',
   '2024-05-02T10:05:00.000000+00:00', '2024-05-02T10:01:00.000000+00:00'),
  ('rcp_wait', 'ptn_a1', 'key-3', 'f5e78b59097898bc2131ae6355b89009a70a7ab5c4bcd2f3c86b74c0c5b7f7a6',
   '{"version": 1, "supplier": {"name": "Ferretería Ochoa, S.R.L.", "tax_id": "131246796", "tax_id_kind": "RNC", "email": null, "phone": null}, "date": "2024-05-03", "due_date": "2024-05-03", "ncf": "B0100000003", "ncf_type": "B01", "category": "Gastos de ferretería", "currency": "DOP", "exchange_rate": null, "total": "236.00", "lines": [{"description": "Tornillos", "amount": "100.00", "quantity": "2", "tax_rate": "18", "category": "Gastos de ferretería"}], "attachment": {"filename": "receipt.png", "content_type": "image/png", "size": 8}}',
   'queued', '131246796', 'Ferretería Ochoa, S.R.L.', 'B0100000003', 'B01', '2024-05-03', '236.00',
   'DOP', 0, NULL, NULL, NULL, NULL, '[]', NULL, '2024-05-03T10:00:00.000000+00:00',
   '2024-05-03T10:00:00.000000+00:00', NULL, NULL),
  ('rcp_twin', 'ptn_a1', 'key-4', '05e78b59097898bc2131ae6355b89009a70a7ab5c4bcd2f3c86b74c0c5b7f7a6',
   '{"version": 1, "supplier": {"name": "Ferretería Ochoa, S.R.L.", "tax_id": "131246796", "tax_id_kind": "RNC", "email": null, "phone": null}, "date": "2024-05-01", "due_date": "2024-05-01", "ncf": "B0100000001", "ncf_type": "B01", "category": "Gastos de ferretería", "currency": "DOP", "exchange_rate": null, "total": "236.00", "lines": [{"description": "Tornillos", "amount": "100.00", "quantity": "2", "tax_rate": "18", "category": "Gastos de ferretería"}], "attachment": null}',
   'duplicate', '131246796', 'Ferretería Ochoa, S.R.L.', 'B0100000001', 'B01', '2024-05-01',
   '236.00', 'DOP', 1, NULL, NULL, NULL,
   '{"step": "duplicate_check", "code": "duplicate", "message": "bill 9001 has this NCF"}',
   '["likely_duplicate"]', '9001', '2024-05-04T10:00:00.000000+00:00',
   '2024-05-04T10:00:01.000000+00:00', '2024-05-04T10:00:01.000000+00:00', NULL);

-- Step states as the release writes them. rcp_fail's bill step `failed` by a retryable error was
-- written after migration 0101 had run: applying 0101 (now 0501) again would turn it `attempting`.
INSERT INTO receipt_steps(receipt_id, step, state, outcome, alegra_id, detail, attempts, started_at,
                          updated_at) VALUES
  ('rcp_done', 'supplier', 'done', 'found', '501', '{}', 1, '2024-05-01T10:00:01.000000+00:00',
   '2024-05-01T10:00:02.000000+00:00'),
  ('rcp_done', 'account:gastos de ferreteria', 'done', 'created', '5101', '{}', 1,
   '2024-05-01T10:00:02.000000+00:00', '2024-05-01T10:00:03.000000+00:00'),
  ('rcp_done', 'bill', 'done', 'created', '9001', '{"total": "236.00"}', 1,
   '2024-05-01T10:00:03.000000+00:00', '2024-05-01T10:00:05.000000+00:00'),
  ('rcp_fail', 'supplier', 'done', 'found', '501', '{}', 1, '2024-05-02T10:00:01.000000+00:00',
   '2024-05-02T10:00:01.000000+00:00'),
  ('rcp_fail', 'bill', 'failed', NULL, NULL,
   '{"error": {"kind": "Unavailable", "status": 503, "method": "POST", "retryable": true}}', 3,
   '2024-05-02T10:00:02.000000+00:00', '2024-05-02T10:05:00.000000+00:00'),
  ('rcp_wait', 'supplier', 'attempting', NULL, NULL, '{}', 1, '2024-05-03T10:00:01.000000+00:00',
   '2024-05-03T10:00:01.000000+00:00');

INSERT INTO receipt_attachments(receipt_id, filename, content_type, size, data) VALUES
  ('rcp_wait', 'receipt.png', 'image/png', 8, X'89504E470D0A1A0A');

INSERT INTO bills(alegra_id, provider_id, provider_tax_id, ncf_key, bill_date, total, status,
                  receipt_id, raw, source, deleted, confirmed_at, updated_at) VALUES
  ('9001', '501', '131246796', 'B0100000001', '2024-05-01', '236.00', 'open', 'rcp_done',
   '{"id":"9001","date":"2024-05-01","total":236,"status":"open","provider":{"id":"501"}}', 'receipt',
   0, '2024-05-01T10:00:05.000000+00:00', '2024-05-01T10:00:05.000000+00:00'),
  ('9002', '777', '101010632', 'B0100000009', '2024-04-15', '50.00', 'void', NULL,
   '{"id":"9002","date":"2024-04-15","total":50,"status":"void","provider":{"id":"777"}}', 'backfill',
   0, '2024-05-01T09:00:00.000000+00:00', '2024-05-01T09:00:00.000000+00:00');

INSERT INTO bill_claims(claim_key, receipt_id, claimed_at) VALUES
  ('131246796|B0100000001', 'rcp_done', '2024-05-01T10:00:00.500000+00:00'),
  ('131246796|B0100000002', 'rcp_fail', '2024-05-02T10:00:00.500000+00:00'),
  ('131246796|B0100000003', 'rcp_wait', '2024-05-03T10:00:00.500000+00:00');

INSERT INTO inbox(received_at, subject, resource, resource_id, body, shape, state, attempts,
                  next_attempt_at, last_error, applied_at, key_index) VALUES
  ('2024-05-02T09:00:00.000000+00:00', 'delete-client', 'client', '502',
   CAST('{"subject":"delete-client","message":{"client":{"id":"502"}}}' AS BLOB), 'ok', 'applied', 0,
   NULL, NULL, '2024-05-02T09:00:01.000000+00:00', 0),
  ('2024-05-03T09:00:00.000000+00:00', 'edit-bill', 'bill', '9001',
   CAST('{"subject":"edit-bill","message":{"bill":{"id":"9001"}}}' AS BLOB), 'ok', 'failed', 2,
   '2024-05-03T09:05:00.000000+00:00', '{"kind": "Unavailable", "status": 503}', NULL, 0),
  ('2024-05-03T09:10:00.000000+00:00', 'edit-client', 'client', '501',
   CAST('{"subject":"edit-client","message":{"client":{"id":"501"}}}' AS BLOB), 'ok', 'parked', 12,
   NULL, '{"kind": "Unavailable", "status": 503}', NULL, 1),
  ('2024-05-03T09:20:00.000000+00:00', 'new-client', 'client', '503',
   CAST('{"subject":"new-client","message":{"client":{"id":"503"}}}' AS BLOB), 'ok', 'received', 0,
   NULL, NULL, NULL, 0),
  ('2024-05-03T09:30:00.000000+00:00', NULL, NULL, NULL, CAST('{oops' AS BLOB), 'malformed',
   'skipped', 0, NULL, 'shape malformed', NULL, NULL);

INSERT INTO webhook_handshakes(received_at, key_index) VALUES
  ('2024-05-01T08:00:00.000000+00:00', 0);

INSERT INTO subscriptions(event, alegra_id, url_key_index, present, created_at, last_checked_at,
                          recreated_count, missing_since) VALUES
  ('new-client', '11', 0, 1, '2024-05-01T08:00:00.000000+00:00', '2024-05-03T08:00:00.000000+00:00',
   0, NULL),
  ('edit-bill', NULL, NULL, 0, NULL, '2024-05-03T08:00:00.000000+00:00', 1,
   '2024-05-03T08:00:00.000000+00:00');

INSERT INTO jobs(name, checkpoint, last_started_at, last_finished_at, last_outcome, last_duration_s,
                 last_error, next_run_at, owner, lease_until) VALUES
  ('backfill', '{"contacts": {"start": 60}}', '2024-05-01T08:00:00.000000+00:00',
   '2024-05-01T08:01:00.000000+00:00', 'incomplete', 60.0, NULL, '2024-05-01T08:02:00.000000+00:00',
   NULL, NULL),
  ('reconcile', NULL, '2024-05-03T08:00:00.000000+00:00', NULL, NULL, NULL, NULL, NULL,
   'worker-host:4242', '2024-05-03T08:10:00.000000+00:00');

INSERT INTO job_runs(name, started_at, finished_at, outcome, detail, duration_s, error) VALUES
  ('backfill', '2024-05-01T08:00:00.000000+00:00', '2024-05-01T08:01:00.000000+00:00', 'incomplete',
   '{"contacts": 60}', 60.0, NULL),
  ('reconcile', '2024-05-02T08:00:00.000000+00:00', '2024-05-02T08:00:30.000000+00:00', 'failed',
   '{}', 30.0, 'Unavailable: 503');

INSERT INTO drift_reports(job_run_id, created_at, complete, missing, extra, different, detail) VALUES
  (2, '2024-05-02T08:00:30.000000+00:00', 0, 1, 0, 2, '{"missing": ["503"]}');

INSERT INTO worker_state(id, pid, beat_at, budget) VALUES
  (1, 4242, '2024-05-03T10:00:00.000000+00:00', '{"limit": 150, "remaining": 140}');

INSERT INTO metric_counters(name, labels, value, updated_at) VALUES
  ('alegra_sync_receipts_total', '{"outcome":"completed"}', 1.0, '2024-05-03T10:00:00.000000+00:00'),
  ('alegra_sync_step_seconds_bucket', '{"le":"1.0","outcome":"created","step":"bill"}', 1.0,
   '2024-05-03T10:00:00.000000+00:00');
