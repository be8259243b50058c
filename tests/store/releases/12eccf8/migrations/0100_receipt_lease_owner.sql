-- Which worker holds a receipt's lease: "host:pid:boot" (sync/store/receipt_work.py). A worker
-- restarted after a crash on the same host sees its predecessor is gone and takes the receipt back
-- at once instead of waiting for the lease to expire.
ALTER TABLE receipts ADD COLUMN lease_owner TEXT;
