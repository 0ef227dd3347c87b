-- 0001: the Koppeltaal 1.3 tables (SPEC.md §5-§7, §14). Times are Unix microseconds (UTC).
CREATE TABLE domains (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT    NOT NULL UNIQUE,
    -- last resource/message version issued in this domain; versions are strictly increasing per domain.
    last_version  TEXT    NOT NULL DEFAULT '',
    created_at    BIGINT  NOT NULL
);

CREATE TABLE applications (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    ident      TEXT    NOT NULL UNIQUE,  -- application identifier = OAuth client_id
    name       TEXT    NOT NULL DEFAULT '',
    roles      TEXT    NOT NULL DEFAULT '', -- comma separated ApplicationRoles codes
    created_at BIGINT  NOT NULL
);

CREATE TABLE app_instances (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    domain_id       BIGINT  NOT NULL REFERENCES domains(id),
    application_id  BIGINT  NOT NULL REFERENCES applications(id),
    username        TEXT    NOT NULL UNIQUE,
    password_hash   TEXT    NOT NULL,
    api_version     TEXT    NOT NULL DEFAULT '1.3.5',
    webhook_url     TEXT    NOT NULL DEFAULT '',
    webhook_headers TEXT    NOT NULL DEFAULT '',
    created_at      BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL,
    UNIQUE (domain_id, application_id)
);

CREATE TABLE subscriptions (
    instance_id BIGINT NOT NULL REFERENCES app_instances(id) ON DELETE CASCADE,
    event       TEXT   NOT NULL,
    PRIMARY KEY (instance_id, event)
);
CREATE INDEX subscriptions_event ON subscriptions (event);

CREATE TABLE message_bodies (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    format TEXT    NOT NULL,          -- "xml" or "json"
    body   BLOB    NOT NULL
);

CREATE TABLE messages (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    domain_id          BIGINT  NOT NULL REFERENCES domains(id),
    sender_instance_id BIGINT  REFERENCES app_instances(id),
    event              TEXT    NOT NULL,
    message_identifier TEXT    NOT NULL DEFAULT '',
    feed_id            TEXT    NOT NULL DEFAULT '',
    patient_ref        TEXT    NOT NULL DEFAULT '',
    focal_ref          TEXT    NOT NULL DEFAULT '',
    focal_version      TEXT    NOT NULL DEFAULT '',
    version            TEXT    NOT NULL DEFAULT '',
    body_id            BIGINT  REFERENCES message_bodies(id),
    is_expired         BOOLEAN NOT NULL DEFAULT FALSE,
    created_at         BIGINT  NOT NULL
);
CREATE INDEX messages_domain_created ON messages (domain_id, created_at);

CREATE TABLE resources (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    domain_id       BIGINT  NOT NULL REFERENCES domains(id),
    url             TEXT    NOT NULL,   -- resource URL without /_history/<version>
    resource_type   TEXT    NOT NULL,
    current_version TEXT    NOT NULL,
    content_hash    TEXT    NOT NULL,
    created_at      BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL,
    last_modified_by BIGINT REFERENCES app_instances(id),
    UNIQUE (domain_id, url)
);

CREATE TABLE resource_versions (
    resource_id BIGINT NOT NULL REFERENCES resources(id),
    version     TEXT   NOT NULL,
    message_id  BIGINT REFERENCES messages(id),
    content     BLOB   NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (resource_id, version)
);

-- One row per recipient of a message: the application instance's mailbox (ApplicationMessages).
CREATE TABLE queue (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT, -- the IID in [base]/MessageHeader/<id>
    domain_id           BIGINT  NOT NULL REFERENCES domains(id),
    instance_id         BIGINT  NOT NULL REFERENCES app_instances(id),
    message_id          BIGINT  NOT NULL REFERENCES messages(id),
    event               TEXT    NOT NULL,
    patient_ref         TEXT    NOT NULL DEFAULT '',
    focal_ref           TEXT    NOT NULL DEFAULT '',
    status              TEXT    NOT NULL,
    status_changed_at   BIGINT  NOT NULL,
    version             TEXT    NOT NULL,  -- entry version in the MessageHeader self link
    claim_deadline      BIGINT,
    retry_count         INTEGER NOT NULL DEFAULT 0,
    exception           TEXT    NOT NULL DEFAULT '',
    fetched_api_version TEXT    NOT NULL DEFAULT '',
    created_at          BIGINT  NOT NULL
);
-- Claim: oldest New row of one instance is one index seek, whatever the history.
CREATE INDEX queue_claim ON queue (instance_id, status, id);
CREATE INDEX queue_instance ON queue (instance_id, id);
CREATE INDEX queue_claimed_deadline ON queue (claim_deadline) WHERE status = 'Claimed';
CREATE INDEX queue_replace ON queue (instance_id, focal_ref, event);

-- Room for the SSO issue: OAuth clients and grants, ActivityDefinitions.
CREATE TABLE oauth_clients (
    application_id BIGINT NOT NULL PRIMARY KEY REFERENCES applications(id),
    secret_hash    TEXT   NOT NULL DEFAULT '',
    launch_url     TEXT   NOT NULL DEFAULT '',
    redirect_uris  TEXT   NOT NULL DEFAULT ''
);
