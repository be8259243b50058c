-- Key rotation: `partners rotate NAME` gives a partner a new key and keeps the one it replaces
-- valid until `old_key_expires_at` (the grace period), so the partner can switch without a gap.
-- Only one earlier key is kept: rotating again ends the previous one at once. Hashed like
-- key_hash (sha256 hex); never the key itself.
ALTER TABLE partners ADD COLUMN old_key_hash TEXT;
ALTER TABLE partners ADD COLUMN old_key_prefix TEXT;
ALTER TABLE partners ADD COLUMN old_key_expires_at TEXT;
ALTER TABLE partners ADD COLUMN rotated_at TEXT;

CREATE UNIQUE INDEX partners_by_old_key ON partners(old_key_hash) WHERE old_key_hash IS NOT NULL;
