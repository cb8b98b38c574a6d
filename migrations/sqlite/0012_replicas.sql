-- Processes serving this database (one per host process; several when
-- replicas share it). Each writes a heartbeat with the plugins it serves, so
-- the listing shows which version each replica runs, and the leases of a
-- replica whose heartbeat stopped are released without waiting for them.
CREATE TABLE replicas (
    id           TEXT    PRIMARY KEY,       -- host:pid:start, as lease owners name it
    host         TEXT    NOT NULL,
    pid          INTEGER NOT NULL,
    version      TEXT    NOT NULL,          -- the recoco-sync binary's version
    listen       TEXT,                      -- address it serves on, when known
    plugins      TEXT    NOT NULL,          -- JSON list of {name, version, hash}
    started_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    timeout_ms   INTEGER NOT NULL,          -- lost when not seen for this long (its queue.replica_timeout)
    stopped_at   INTEGER                    -- a clean stop, or its leases released as lost
);
