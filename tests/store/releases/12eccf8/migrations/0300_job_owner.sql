-- Which process is running a job (the worker's scheduler, or `alegra-sync backfill|reconcile`),
-- so that two never run the same job at once. owner = 'host:pid'; a holder on this host whose pid
-- is gone (kill -9) is replaced at once, any other holder when lease_until has passed.
ALTER TABLE jobs ADD COLUMN owner TEXT;
ALTER TABLE jobs ADD COLUMN lease_until TEXT;
-- Each run's duration and error, beside its outcome and detail.
ALTER TABLE job_runs ADD COLUMN duration_s REAL;
ALTER TABLE job_runs ADD COLUMN error TEXT;
CREATE INDEX job_runs_by_name ON job_runs(name, id);
