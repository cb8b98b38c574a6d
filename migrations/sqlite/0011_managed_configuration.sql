-- Managed configuration (host/src/managed.rs). Each source and connection has
-- an owner: 'file' (declared in the service's configuration file, applied at
-- each start, read-only elsewhere) or 'database' (created through the CLI,
-- the admin API or the page, or by `config apply`).
ALTER TABLE sources ADD COLUMN owner TEXT NOT NULL DEFAULT 'file';
ALTER TABLE connections ADD COLUMN owner TEXT NOT NULL DEFAULT 'file';

-- What the file last declared for `enabled`: a start changes `enabled` only
-- when the file changed its mind, so an operator's pause survives restarts.
ALTER TABLE sources ADD COLUMN file_enabled INTEGER;
ALTER TABLE connections ADD COLUMN file_enabled INTEGER;
UPDATE sources SET file_enabled = enabled;
UPDATE connections SET file_enabled = enabled;

-- Per-connection overrides of the [runtime] quotas (JSON), for both owners.
ALTER TABLE connections ADD COLUMN limits TEXT;

-- A deleted connection keeps its row (its jobs and attempts refer to it) under
-- a freed name; it is out of every listing and receives nothing.
ALTER TABLE connections ADD COLUMN deleted_at INTEGER;
ALTER TABLE sources ADD COLUMN deleted_at INTEGER;
