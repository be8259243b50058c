-- A receipt that failed after its bill was sent but never confirmed keeps the bill step
-- `attempting` (store/receipt_work.py): the bill may exist in Alegra, and the receipt keeps its
-- NCF so that no twin bills it again. Receipts that failed before that rule existed are put in
-- the same state: a bill step failed by a retryable error, or by an error of the lookup a
-- resumed step makes before writing (a GET), never learned whether its bill was created.
UPDATE receipt_steps SET state = 'attempting'
WHERE step = 'bill' AND state = 'failed'
  AND (json_extract(detail, '$.error.retryable') = 1
       OR json_extract(detail, '$.error.method') = 'GET');
