CREATE TABLE intake_dedup (
    source_id BIGINT NOT NULL REFERENCES sources(id),
    key       TEXT   NOT NULL,
    event_id  TEXT   NOT NULL,
    seen_at   BIGINT NOT NULL,
    PRIMARY KEY (source_id, key)
);
CREATE INDEX intake_dedup_by_time ON intake_dedup (seen_at);

ALTER TABLE sources ADD COLUMN scheme TEXT NOT NULL DEFAULT 'recoco';
ALTER TABLE sources ADD COLUMN rate_per_second DOUBLE PRECISION;
ALTER TABLE sources ADD COLUMN rate_burst BIGINT;
