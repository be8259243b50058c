-- Which SECRET_KEY (0 = newest) signed the URL a delivery came in on: once no delivery arrives on
-- an old key any more, that key can be dropped from SECRET_KEY.
ALTER TABLE inbox ADD COLUMN key_index INTEGER;
