-- recoco-sync schema. Times are milliseconds since the Unix epoch (UTC).
-- Secrets (webhook secrets, API passwords, connector config fields marked
-- writeOnly) are stored sealed: "sealed:v1:<base64 nonce+ciphertext>".

-- A Recoco portal that sends webhooks.
CREATE TABLE sources (
    id           INTEGER PRIMARY KEY,
    code         TEXT    NOT NULL UNIQUE,
    api_url      TEXT,
    secrets      TEXT    NOT NULL,          -- sealed JSON list of signing secrets
    api_username TEXT,
    api_password TEXT,                      -- sealed
    enabled      INTEGER NOT NULL DEFAULT 1,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);

-- One plugin fed by one source.
CREATE TABLE connections (
    id            INTEGER PRIMARY KEY,
    name          TEXT    NOT NULL UNIQUE,
    source_id     INTEGER NOT NULL REFERENCES sources(id),
    plugin        TEXT    NOT NULL,
    enabled       INTEGER NOT NULL DEFAULT 1,
    allowed_hosts TEXT,                     -- JSON list; NULL = the plugin's defaults
    config        TEXT    NOT NULL,         -- JSON, secret fields sealed
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);

-- Every webhook request that passed the signature check, valid or not.
CREATE TABLE events (
    id           TEXT    PRIMARY KEY,       -- evt_…
    source_id    INTEGER NOT NULL REFERENCES sources(id),
    status       TEXT    NOT NULL,          -- queued | processed | failed | ignored | skipped | invalid
    topic        TEXT,
    object_type  TEXT,
    object_id    TEXT,
    action       TEXT,
    webhook_uuid TEXT,
    body         BLOB    NOT NULL,          -- raw request body, byte for byte
    headers      TEXT    NOT NULL,          -- JSON object of allow-listed headers
    remote_addr  TEXT,
    error        TEXT,
    received_at  INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
CREATE INDEX events_by_time ON events (received_at DESC);
CREATE INDEX events_by_status ON events (status, received_at DESC);

-- Work for one connection: an event to handle or a task to run.
CREATE TABLE jobs (
    id            TEXT    PRIMARY KEY,      -- job_…
    connection_id INTEGER NOT NULL REFERENCES connections(id),
    plugin        TEXT    NOT NULL,
    kind          TEXT    NOT NULL,         -- event | task
    event_id      TEXT    REFERENCES events(id),
    task_name     TEXT,
    payload       TEXT,
    dedup_key     TEXT,
    state         TEXT    NOT NULL,         -- queued | running | waiting | succeeded | failed | dead
    attempts      INTEGER NOT NULL DEFAULT 0,
    max_attempts  INTEGER NOT NULL,
    run_at        INTEGER NOT NULL,
    lease_owner   TEXT,
    lease_until   INTEGER,
    last_error    TEXT,
    summary       TEXT,
    progress      TEXT,                     -- JSON {done, total, message}
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    finished_at   INTEGER
);
CREATE INDEX jobs_due ON jobs (state, run_at);
CREATE INDEX jobs_by_event ON jobs (event_id);
CREATE INDEX jobs_by_connection ON jobs (connection_id, created_at DESC);
-- At most one pending task per (connection, task, dedup key).
CREATE UNIQUE INDEX jobs_pending_dedup ON jobs (connection_id, task_name, dedup_key)
    WHERE dedup_key IS NOT NULL AND state IN ('queued', 'waiting');

-- One row per run of a job.
CREATE TABLE attempts (
    id             INTEGER PRIMARY KEY,
    job_id         TEXT    NOT NULL REFERENCES jobs(id),
    number         INTEGER NOT NULL,
    plugin         TEXT    NOT NULL,
    plugin_version TEXT,
    plugin_hash    TEXT,
    started_at     INTEGER NOT NULL,
    duration_ms    INTEGER NOT NULL,
    outcome        TEXT    NOT NULL,        -- succeeded | retry | failed | dead
    error          TEXT,
    summary        TEXT
);
CREATE INDEX attempts_by_job ON attempts (job_id, number);

-- Key-value state private to a connection (the WIT `state` interface).
CREATE TABLE connection_state (
    connection_id INTEGER NOT NULL REFERENCES connections(id),
    key           TEXT    NOT NULL,
    value         TEXT    NOT NULL,
    updated_at    INTEGER NOT NULL,
    PRIMARY KEY (connection_id, key)
);

-- Last manifest seen for each plugin, so events keep being routed to a plugin
-- that is briefly absent (its jobs wait for it).
CREATE TABLE plugins (
    name       TEXT PRIMARY KEY,
    version    TEXT NOT NULL,
    hash       TEXT NOT NULL,
    manifest   TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
