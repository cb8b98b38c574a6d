-- Per-object order, coalescing, pausing, throttling, policies, schedules
-- (see migrations/sqlite/0002_queue_order.sql for what each column means).

ALTER TABLE jobs ADD COLUMN ordering_key TEXT;
ALTER TABLE jobs ADD COLUMN coalesced BIGINT NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN coalesced_into TEXT;
ALTER TABLE jobs ADD COLUMN coalesced_event_id TEXT;
ALTER TABLE jobs ADD COLUMN throttles BIGINT NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN time_kills BIGINT NOT NULL DEFAULT 0;

-- Ordering keys of live jobs, kept by triggers as on SQLite; `seq` is the
-- job's `seq` (arrival order).
CREATE TABLE job_keys (
    connection_id BIGINT NOT NULL,
    key           TEXT   NOT NULL,
    seq           BIGINT NOT NULL,
    job_id        TEXT   NOT NULL,
    PRIMARY KEY (connection_id, key, seq)
);
CREATE INDEX job_keys_by_job ON job_keys (job_id);

CREATE FUNCTION job_keys_hold() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_keys (connection_id, key, seq, job_id)
    SELECT NEW.connection_id, k, NEW.seq, NEW.id
      FROM jsonb_array_elements_text(NEW.ordering_key::jsonb) AS k
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;

CREATE FUNCTION job_keys_release() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM job_keys WHERE job_id = NEW.id;
    RETURN NULL;
END $$;

CREATE TRIGGER job_keys_on_insert AFTER INSERT ON jobs FOR EACH ROW
WHEN (NEW.ordering_key IS NOT NULL AND NEW.state IN ('queued', 'waiting', 'paused', 'running'))
EXECUTE FUNCTION job_keys_hold();

CREATE TRIGGER job_keys_on_done AFTER UPDATE OF state ON jobs FOR EACH ROW
WHEN (NEW.ordering_key IS NOT NULL AND NEW.state NOT IN ('queued', 'waiting', 'paused', 'running'))
EXECUTE FUNCTION job_keys_release();

-- An operator retry brings a finished job back: its keys hold again.
CREATE TRIGGER job_keys_on_revive AFTER UPDATE OF state ON jobs FOR EACH ROW
WHEN (NEW.ordering_key IS NOT NULL AND NEW.state IN ('queued', 'waiting', 'paused', 'running')
      AND OLD.state NOT IN ('queued', 'waiting', 'paused', 'running'))
EXECUTE FUNCTION job_keys_hold();

CREATE INDEX jobs_by_connection_state ON jobs (connection_id, state);

CREATE TABLE connection_policies (
    connection_id BIGINT PRIMARY KEY REFERENCES connections(id),
    policy        TEXT   NOT NULL,
    updated_at    BIGINT NOT NULL
);

ALTER TABLE connections ADD COLUMN removed_at BIGINT;

CREATE TABLE schedules (
    connection_id BIGINT NOT NULL REFERENCES connections(id),
    task          TEXT   NOT NULL,
    spec          TEXT   NOT NULL,
    payload       TEXT   NOT NULL,
    next_run_at   BIGINT NOT NULL,
    last_run_at   BIGINT,
    last_job_id   TEXT,
    updated_at    BIGINT NOT NULL,
    PRIMARY KEY (connection_id, task, spec)
);
