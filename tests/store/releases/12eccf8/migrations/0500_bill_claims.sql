-- One bill per fiscal document. A claim names the receipt of ours that may bill a supplier's NCF
-- (`claim_key` = '<supplier tax id, or name:<name_key>>|<NCF>'); taken inside the duplicate
-- check's transaction, so two receipts (even in two processes) never both go on to bill it.
CREATE TABLE bill_claims (
    claim_key   TEXT PRIMARY KEY,
    receipt_id  TEXT NOT NULL REFERENCES receipts(id),
    claimed_at  TEXT NOT NULL
);

-- The duplicate check's lookups: bills by NCF (any supplier id) and by date, receipts by date.
CREATE INDEX bills_by_ncf_key ON bills(ncf_key) WHERE deleted = 0;
CREATE INDEX bills_by_date ON bills(bill_date) WHERE deleted = 0;
CREATE INDEX receipts_by_date ON receipts(receipt_date);
