-- When an operator last retried a failed receipt: the worker's 24 h retry window counts from the
-- later of this and the receipt's arrival, so a retry gets a full window, not a single attempt.
ALTER TABLE receipts ADD COLUMN retried_at TEXT;
