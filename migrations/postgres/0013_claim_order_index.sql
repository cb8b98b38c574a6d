-- Claims take the oldest due job in arrival order (ORDER BY run_at, seq LIMIT 1).
-- SQLite's jobs_due already ends with the rowid; here the index names seq,
-- so a claim walks it and stops at the first job it may take instead of
-- sorting every queued job.
DROP INDEX jobs_due;
CREATE INDEX jobs_due ON jobs (state, run_at, seq);
