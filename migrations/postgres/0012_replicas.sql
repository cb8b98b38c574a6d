CREATE TABLE replicas (
    id           TEXT   PRIMARY KEY,
    host         TEXT   NOT NULL,
    pid          BIGINT NOT NULL,
    version      TEXT   NOT NULL,
    listen       TEXT,
    plugins      TEXT   NOT NULL,
    started_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    timeout_ms   BIGINT NOT NULL,
    stopped_at   BIGINT
);
