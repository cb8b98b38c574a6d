-- The queue keeps its promise: per-object order, coalescing, pausing, retry
-- budget for throttling, per-connection policies, periodic schedules.

-- JSON list of the job's ordering keys (project ids for Recoco events), or NULL
-- for a job that may run in parallel with anything.
ALTER TABLE jobs ADD COLUMN ordering_key TEXT;
-- Pending jobs this run replaced (coalescing), and the job a coalesced one
-- was folded into.
ALTER TABLE jobs ADD COLUMN coalesced INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN coalesced_into TEXT;
-- The latest event folded into this job: the one it delivers.
ALTER TABLE jobs ADD COLUMN coalesced_event_id TEXT;
-- Reschedules after a 429/503 with Retry-After, which do not use an attempt.
ALTER TABLE jobs ADD COLUMN throttles INTEGER NOT NULL DEFAULT 0;
-- Runs stopped by the CPU deadline or the wall-clock limit (retried once).
ALTER TABLE jobs ADD COLUMN time_kills INTEGER NOT NULL DEFAULT 0;
-- States added: paused (its connection is disabled or removed), coalesced
-- (folded into a later job of the same key), skipped (its plugin, once
-- loaded, does not subscribe to the event).

-- Ordering keys of live jobs (queued, waiting, paused, running), one row per
-- key, kept by triggers so every writer (intake's own connection included)
-- maintains it. `seq` is the job's rowid: arrival order.
CREATE TABLE job_keys (
    connection_id INTEGER NOT NULL,
    key           TEXT    NOT NULL,
    seq           INTEGER NOT NULL,
    job_id        TEXT    NOT NULL,
    PRIMARY KEY (connection_id, key, seq)
) WITHOUT ROWID;
CREATE INDEX job_keys_by_job ON job_keys (job_id);

CREATE TRIGGER job_keys_on_insert AFTER INSERT ON jobs
WHEN NEW.ordering_key IS NOT NULL AND NEW.state IN ('queued', 'waiting', 'paused', 'running')
BEGIN
    INSERT OR IGNORE INTO job_keys (connection_id, key, seq, job_id)
    SELECT NEW.connection_id, value, NEW.rowid, NEW.id FROM json_each(NEW.ordering_key);
END;

CREATE TRIGGER job_keys_on_done AFTER UPDATE OF state ON jobs
WHEN NEW.ordering_key IS NOT NULL AND NEW.state NOT IN ('queued', 'waiting', 'paused', 'running')
BEGIN
    DELETE FROM job_keys WHERE job_id = NEW.id;
END;

-- An operator retry brings a finished job back: its keys hold again.
CREATE TRIGGER job_keys_on_revive AFTER UPDATE OF state ON jobs
WHEN NEW.ordering_key IS NOT NULL AND NEW.state IN ('queued', 'waiting', 'paused', 'running')
     AND OLD.state NOT IN ('queued', 'waiting', 'paused', 'running')
BEGIN
    INSERT OR IGNORE INTO job_keys (connection_id, key, seq, job_id)
    SELECT NEW.connection_id, value, NEW.rowid, NEW.id FROM json_each(NEW.ordering_key);
END;

CREATE INDEX jobs_by_connection_state ON jobs (connection_id, state);

-- Delivery settings of a connection ([connections.delivery] in the file), as
-- JSON; absent = the [queue] defaults.
CREATE TABLE connection_policies (
    connection_id INTEGER PRIMARY KEY REFERENCES connections(id),
    policy        TEXT    NOT NULL,
    updated_at    INTEGER NOT NULL
);

-- Connections no longer declared in the configuration file: they receive no
-- new events and their pending jobs pause (nothing is deleted).
ALTER TABLE connections ADD COLUMN removed_at INTEGER;

-- Periodic tasks of a connection (`schedule = [...]`). Firing moves
-- `next_run_at` with a compare-and-set, so a period fires once across
-- processes and restarts.
CREATE TABLE schedules (
    connection_id INTEGER NOT NULL REFERENCES connections(id),
    task          TEXT    NOT NULL,
    spec          TEXT    NOT NULL,         -- "every 24h" or "cron 0 3 * * *"
    payload       TEXT    NOT NULL,
    next_run_at   INTEGER NOT NULL,
    last_run_at   INTEGER,
    last_job_id   TEXT,
    updated_at    INTEGER NOT NULL,
    PRIMARY KEY (connection_id, task, spec)
);
