CREATE INDEX jobs_finished ON jobs (state, finished_at);
ALTER TABLE connections ADD COLUMN filter TEXT;
ALTER TABLE events ADD COLUMN filtered TEXT;
