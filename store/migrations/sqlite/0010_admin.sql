-- 0010: administration (issue 13): administrator accounts, console sessions and
-- API tokens; who manages each provisioned object (the configuration file or the
-- Support API) and a row version for optimistic locking; the domain's DTAP phase
-- (the Test Portal only runs outside production). Secrets are stored as hashes.
ALTER TABLE domains ADD COLUMN managed_by TEXT NOT NULL DEFAULT 'config';
ALTER TABLE domains ADD COLUMN dtap_phase TEXT NOT NULL DEFAULT 'production';
ALTER TABLE domains ADD COLUMN row_version BIGINT NOT NULL DEFAULT 1;
ALTER TABLE domains ADD COLUMN updated_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE applications ADD COLUMN managed_by TEXT NOT NULL DEFAULT 'config';
ALTER TABLE applications ADD COLUMN row_version BIGINT NOT NULL DEFAULT 1;
ALTER TABLE applications ADD COLUMN updated_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE app_instances ADD COLUMN managed_by TEXT NOT NULL DEFAULT 'config';
ALTER TABLE app_instances ADD COLUMN row_version BIGINT NOT NULL DEFAULT 1;

CREATE TABLE admin_users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    username      TEXT    NOT NULL UNIQUE,
    name          TEXT    NOT NULL DEFAULT '',
    email         TEXT    NOT NULL DEFAULT '',
    password_hash TEXT    NOT NULL,
    role          TEXT    NOT NULL,              -- system | domain | application
    disabled      BOOLEAN NOT NULL DEFAULT FALSE,
    managed_by    TEXT    NOT NULL DEFAULT 'api', -- config | api
    row_version   BIGINT  NOT NULL DEFAULT 1,
    created_at    BIGINT  NOT NULL,
    updated_at    BIGINT  NOT NULL
);

-- What a domain or application administrator administers.
CREATE TABLE admin_user_domains (
    user_id   BIGINT NOT NULL REFERENCES admin_users(id) ON DELETE CASCADE,
    domain_id BIGINT NOT NULL REFERENCES domains(id),
    PRIMARY KEY (user_id, domain_id)
);
CREATE TABLE admin_user_applications (
    user_id        BIGINT NOT NULL REFERENCES admin_users(id) ON DELETE CASCADE,
    application_id BIGINT NOT NULL REFERENCES applications(id),
    PRIMARY KEY (user_id, application_id)
);

-- A console login: the cookie holds the secret, the row its SHA-256.
CREATE TABLE admin_sessions (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    secret_hash  TEXT    NOT NULL UNIQUE,
    csrf_token   TEXT    NOT NULL,
    user_id      BIGINT  NOT NULL REFERENCES admin_users(id) ON DELETE CASCADE,
    remote       TEXT    NOT NULL DEFAULT '',
    created_at   BIGINT  NOT NULL,
    last_seen_at BIGINT  NOT NULL,
    expires_at   BIGINT  NOT NULL
);
CREATE INDEX admin_sessions_expires ON admin_sessions (expires_at);

-- An API token for scripts (Authorization: Bearer kpat_...).
CREATE TABLE admin_tokens (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    secret_hash  TEXT    NOT NULL UNIQUE,
    user_id      BIGINT  NOT NULL REFERENCES admin_users(id) ON DELETE CASCADE,
    name         TEXT    NOT NULL DEFAULT '',
    created_at   BIGINT  NOT NULL,
    expires_at   BIGINT  NOT NULL,
    last_used_at BIGINT  NOT NULL DEFAULT 0,
    revoked_at   BIGINT
);
CREATE INDEX admin_tokens_user ON admin_tokens (user_id);
