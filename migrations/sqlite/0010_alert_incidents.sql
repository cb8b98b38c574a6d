-- Alerts on repeated failure (host/src/alerts): one row per incident of a
-- connection, opened when N consecutive runs of its jobs fail, a job goes dead
-- or its circuit opens, and resolved when one of its jobs succeeds again.
CREATE TABLE alert_incidents (
    id                 INTEGER PRIMARY KEY,
    connection_id      INTEGER NOT NULL,   -- no foreign key: incidents outlive a deleted connection
    connection         TEXT    NOT NULL,   -- name at the time (kept if it is deleted)
    reason             TEXT    NOT NULL,   -- failures | dead | circuit_open
    summary            TEXT    NOT NULL,   -- one line for people
    plugin             TEXT,
    plugin_version     TEXT,
    job_id             TEXT,               -- the run that opened it
    event_id           TEXT,
    attempt            INTEGER,
    last_error         TEXT,               -- scrubbed of secrets, cut to 2 KiB
    failures           INTEGER NOT NULL,   -- consecutive failed runs, last seen
    opened_at          INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL,
    resolved_at        INTEGER,
    -- Delivery of the notices: when each was sent, or why it could not be.
    opened_notified_at   INTEGER,
    resolved_notified_at INTEGER,
    notify_error         TEXT
);
-- At most one open incident per connection: the notice goes out once.
CREATE UNIQUE INDEX alert_incidents_open ON alert_incidents (connection_id) WHERE resolved_at IS NULL;
CREATE INDEX alert_incidents_by_time ON alert_incidents (opened_at DESC);
