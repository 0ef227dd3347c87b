-- 0017: OAuth client settings (RegisteredClient, SPEC.md §8.1) live in the
-- database, written by the configuration file and the Support API alike, so a
-- change takes effect without a restart and in every process. Lifetimes in µs.
ALTER TABLE oauth_clients ADD COLUMN public_client BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE oauth_clients ADD COLUMN refresh_tokens BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE oauth_clients ADD COLUMN token_lifetime BIGINT NOT NULL DEFAULT 0;
ALTER TABLE oauth_clients ADD COLUMN code_lifetime BIGINT NOT NULL DEFAULT 0;
ALTER TABLE oauth_clients ADD COLUMN launch_lifetime BIGINT NOT NULL DEFAULT 0;
ALTER TABLE oauth_clients ADD COLUMN activation_days INTEGER NOT NULL DEFAULT 0;
ALTER TABLE oauth_clients ADD COLUMN allowed_origins TEXT NOT NULL DEFAULT '';
ALTER TABLE oauth_clients ADD COLUMN row_version BIGINT NOT NULL DEFAULT 1;
ALTER TABLE oauth_clients ADD COLUMN updated_at BIGINT NOT NULL DEFAULT 0;
