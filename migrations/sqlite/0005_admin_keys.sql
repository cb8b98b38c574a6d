-- Admin API keys and the sessions the admin page signs in with (issue 10).
-- Only SHA-256 hashes of keys and session tokens are stored: a copy of the
-- database gives no way in.

CREATE TABLE admin_keys (
    id           INTEGER PRIMARY KEY,
    name         TEXT    NOT NULL,
    scope        TEXT    NOT NULL CHECK (scope IN ('read', 'admin')),
    key_hash     TEXT    NOT NULL UNIQUE,   -- hex SHA-256 of the key
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at   INTEGER
);
-- A name is reusable once its key is revoked.
CREATE UNIQUE INDEX admin_keys_active_name ON admin_keys (name) WHERE revoked_at IS NULL;

CREATE TABLE admin_sessions (
    token_hash   TEXT    PRIMARY KEY,       -- hex SHA-256 of the cookie value
    key_hash     TEXT    NOT NULL,          -- the key signed in with (checked on every request)
    csrf_token   TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL
);
CREATE INDEX admin_sessions_by_expiry ON admin_sessions (expires_at);

-- A known value sealed under the master key, so a wrong key is refused at start
-- rather than when a secret is first needed.
CREATE TABLE secret_key_check (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    sealed TEXT    NOT NULL
);
