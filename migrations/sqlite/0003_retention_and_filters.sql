-- Retention finds succeeded jobs by age (store::maintenance).
CREATE INDEX jobs_finished ON jobs (state, finished_at);

-- A connection's routing filter: a CEL expression over the event, or NULL.
ALTER TABLE connections ADD COLUMN filter TEXT;

-- Connections whose filter dropped the event, as a JSON list of
-- {"connection", "filter", "reason"}; NULL when no filter dropped it.
ALTER TABLE events ADD COLUMN filtered TEXT;
