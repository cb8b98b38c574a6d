ALTER TABLE sources ADD COLUMN owner TEXT NOT NULL DEFAULT 'file';
ALTER TABLE connections ADD COLUMN owner TEXT NOT NULL DEFAULT 'file';

ALTER TABLE sources ADD COLUMN file_enabled BOOLEAN;
ALTER TABLE connections ADD COLUMN file_enabled BOOLEAN;
UPDATE sources SET file_enabled = enabled;
UPDATE connections SET file_enabled = enabled;

ALTER TABLE connections ADD COLUMN limits TEXT;

ALTER TABLE connections ADD COLUMN deleted_at BIGINT;
ALTER TABLE sources ADD COLUMN deleted_at BIGINT;
