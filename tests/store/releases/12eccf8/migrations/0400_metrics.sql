-- The worker's Prometheus counters, for the web process's /metrics (see sync/metrics.py).
-- The worker adds the increments it gathered in memory to these rows on each heartbeat, so a
-- value only ever grows, across worker restarts too. Histograms are stored as their cumulative
-- `_bucket` (with an `le` label) and `_sum` series. labels: canonical JSON object.

CREATE TABLE metric_counters (
    name        TEXT NOT NULL,
    labels      TEXT NOT NULL,
    value       REAL NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (name, labels)
);
