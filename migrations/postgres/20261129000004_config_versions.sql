-- Every configuration the daemon ran under: the TOML text, who changed it
-- (a token's name, or `file` for an edit on disk) and when, so an earlier
-- version can be looked at and restored.
CREATE TABLE config_versions (
    id BIGSERIAL PRIMARY KEY,
    at_ms BIGINT NOT NULL,
    actor TEXT NOT NULL,
    source TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    toml TEXT NOT NULL
);
