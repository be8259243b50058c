-- Counting a cached table's live and deleted rows (GET /metrics, /v1/cache/status) reads a
-- partial index that holds only those rows instead of every row of the table (each row's raw
-- JSON included). Live rows already have one (the name and NCF lookups); deleted rows, few and
-- rarely written, get a small one each; taxes, which had none, get both.
CREATE INDEX contacts_deleted ON contacts(alegra_id) WHERE deleted = 1;
CREATE INDEX accounts_deleted ON accounts(alegra_id) WHERE deleted = 1;
CREATE INDEX bills_deleted ON bills(alegra_id) WHERE deleted = 1;
CREATE INDEX taxes_deleted ON taxes(alegra_id) WHERE deleted = 1;
CREATE INDEX taxes_live ON taxes(alegra_id) WHERE deleted = 0;
