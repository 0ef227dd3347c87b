-- 0002: SSO (OAuth2 launches, codes, tokens), ActivityDefinitions and webhook
-- delivery state (issue 4). Secrets, codes and tokens are stored only as
-- SHA-256 hashes (hex). Times are Unix microseconds (UTC).

-- A web launch (Launch) or a mobile activation code (MobileLaunch).
CREATE TABLE oauth_launches (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    launch_hash     TEXT    NOT NULL UNIQUE,
    kind            TEXT    NOT NULL,              -- web | mobile
    client_id       TEXT    NOT NULL,              -- the launched application
    instance_id     BIGINT  NOT NULL REFERENCES app_instances(id), -- its instance in the portal's domain
    portal_instance_id BIGINT NOT NULL REFERENCES app_instances(id),
    patient         TEXT    NOT NULL,
    user_ref        TEXT    NOT NULL DEFAULT '',
    resource        TEXT    NOT NULL DEFAULT '',
    intent          TEXT    NOT NULL DEFAULT '',
    expires_at      BIGINT  NOT NULL,
    used_at         BIGINT,
    created_at      BIGINT  NOT NULL
);
CREATE INDEX oauth_launches_expires ON oauth_launches (expires_at);

-- An authorization code issued by Authorize for a launch.
CREATE TABLE oauth_codes (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    code_hash    TEXT    NOT NULL UNIQUE,
    launch_id    BIGINT  NOT NULL REFERENCES oauth_launches(id),
    client_id    TEXT    NOT NULL,
    redirect_uri TEXT    NOT NULL DEFAULT '',
    scope        TEXT    NOT NULL DEFAULT '',
    expires_at   BIGINT  NOT NULL,
    used_at      BIGINT,
    created_at   BIGINT  NOT NULL
);
CREATE INDEX oauth_codes_expires ON oauth_codes (expires_at);

-- An access token (and optional refresh token). Refresh rotation replaces a row
-- by a new one in the same chain; reusing a rotated refresh token revokes the chain.
CREATE TABLE oauth_tokens (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    access_hash        TEXT    NOT NULL UNIQUE,
    refresh_hash       TEXT    UNIQUE,
    chain              TEXT    NOT NULL,           -- grant family id (the first token's code)
    launch_id          BIGINT  NOT NULL REFERENCES oauth_launches(id),
    client_id          TEXT    NOT NULL,
    instance_id        BIGINT  NOT NULL REFERENCES app_instances(id),
    scope              TEXT    NOT NULL DEFAULT '',
    access_expires_at  BIGINT  NOT NULL,
    refresh_expires_at BIGINT  NOT NULL DEFAULT 0,
    rotated_at         BIGINT,                     -- replaced by a refresh
    revoked_at         BIGINT,                     -- chain revoked (refresh token reuse)
    created_at         BIGINT  NOT NULL
);
CREATE INDEX oauth_tokens_chain ON oauth_tokens (chain);

-- ActivityDefinitions (Other coded ActivityDefinition), SPEC.md §3.7.
CREATE TABLE activity_definitions (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT, -- <id> in Other/ActivityDefinition:<id>
    domain_id          BIGINT  NOT NULL REFERENCES domains(id), -- domain it was created in
    identifier         TEXT    NOT NULL,
    application        TEXT    NOT NULL DEFAULT '',           -- providing application (client_id)
    version            TEXT    NOT NULL,
    is_active          BOOLEAN NOT NULL DEFAULT TRUE,
    is_archived        BOOLEAN NOT NULL DEFAULT FALSE,
    is_domain_specific BOOLEAN NOT NULL DEFAULT FALSE,
    content            BLOB    NOT NULL,                      -- the resource as DSTU1 JSON
    created_by         BIGINT  REFERENCES app_instances(id),
    created_at         BIGINT  NOT NULL,
    updated_at         BIGINT  NOT NULL,
    UNIQUE (domain_id, identifier)
);
CREATE INDEX activity_definitions_app ON activity_definitions (application);

CREATE TABLE activity_definition_versions (
    definition_id BIGINT NOT NULL REFERENCES activity_definitions(id),
    version       TEXT   NOT NULL,
    content       BLOB   NOT NULL,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (definition_id, version)
);

-- Webhook dispatcher: how far the queue has been scanned, and one delivery per
-- queue row of an instance with a webhook.
CREATE TABLE notify_checkpoints (
    name    TEXT   NOT NULL PRIMARY KEY,
    last_id BIGINT NOT NULL
);

CREATE TABLE webhook_deliveries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    queue_id        BIGINT  NOT NULL UNIQUE, -- no FK: retention may delete old queue rows
    instance_id     BIGINT  NOT NULL REFERENCES app_instances(id),
    status          TEXT    NOT NULL,              -- pending | delivered | failed
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT  NOT NULL,
    lease_until     BIGINT  NOT NULL DEFAULT 0,
    last_error      TEXT    NOT NULL DEFAULT '',
    created_at      BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
