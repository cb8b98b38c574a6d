-- Intake hardening (issue 10).

-- Keys of the webhooks received recently, per source, so a replayed or repeated
-- request is answered with the first event instead of being stored again.
-- A key is a digest of the signed content (timestamp and body, or the
-- Standard Webhooks message id); rows older than the dedup window no longer
-- count and are pruned by the intake writer.
CREATE TABLE intake_dedup (
    source_id INTEGER NOT NULL REFERENCES sources(id),
    key       TEXT    NOT NULL,
    event_id  TEXT    NOT NULL,            -- the first event (evt_…)
    seen_at   INTEGER NOT NULL,
    PRIMARY KEY (source_id, key)
) WITHOUT ROWID;
CREATE INDEX intake_dedup_by_time ON intake_dedup (seen_at);

-- How a source signs its webhooks: `recoco` (Django-Webhook-Signature-v1) or
-- `standard-webhooks` (webhook-id / webhook-timestamp / webhook-signature).
ALTER TABLE sources ADD COLUMN scheme TEXT NOT NULL DEFAULT 'recoco';
-- Per-source intake rate limit (webhooks per second and burst); NULL = the
-- `[intake]` defaults, 0 per second = unlimited.
ALTER TABLE sources ADD COLUMN rate_per_second REAL;
ALTER TABLE sources ADD COLUMN rate_burst INTEGER;
