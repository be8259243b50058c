-- The receipts that made a bill, for the partner view (store/receipt_view.py): a look-up by
-- bill id instead of a scan of every receipt. Only receipts with a bill are indexed.
CREATE INDEX receipts_by_bill ON receipts(bill_id) WHERE bill_id IS NOT NULL;
