-- 0018: the audit trail (NEN 7513): one row per access to patient data, written
-- in the transaction of the action where the action writes. Rows are append-only;
-- a sealer links them into a hash chain after commit (seq, hash), in the order it
-- finds them, so no write waits for a chain lock. audit_seal holds the chain's
-- head and, after retention removed the oldest rows, the anchor it starts from.
CREATE TABLE audit_events (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    at            BIGINT  NOT NULL,            -- Unix µs
    action        TEXT    NOT NULL,            -- post, claim, read, search, ack, launch, token, storage-read, ...
    result        TEXT    NOT NULL,            -- ok, denied, not-found, invalid, error
    status        INTEGER NOT NULL DEFAULT 0,  -- HTTP status
    actor_kind    TEXT    NOT NULL,            -- instance, bearer, admin, system
    actor         TEXT    NOT NULL,            -- instance user name, administrator, or "system"
    application   TEXT    NOT NULL DEFAULT '',
    domain        TEXT    NOT NULL DEFAULT '',
    client        TEXT    NOT NULL DEFAULT '', -- OAuth client of a Bearer token
    launch_user   TEXT    NOT NULL DEFAULT '', -- launch user of a Bearer token
    token_patient TEXT    NOT NULL DEFAULT '', -- launch patient of a Bearer token
    source_ip     TEXT    NOT NULL DEFAULT '',
    request_id    TEXT    NOT NULL DEFAULT '',
    patient       TEXT    NOT NULL DEFAULT '', -- whose data
    object        TEXT    NOT NULL DEFAULT '', -- MessageHeader/12, Message/7, Other/StorageItem:3, ...
    detail        TEXT    NOT NULL DEFAULT '',
    seq           BIGINT,                      -- position in the chain; NULL until sealed
    hash          TEXT                         -- hex HMAC-SHA-256 of the previous hash and this row
);
CREATE UNIQUE INDEX audit_events_seq ON audit_events (seq) WHERE seq IS NOT NULL;
CREATE INDEX audit_events_unsealed ON audit_events (id) WHERE seq IS NULL;
CREATE INDEX audit_events_patient ON audit_events (patient, at);
CREATE INDEX audit_events_actor ON audit_events (actor, at);
CREATE TABLE audit_seal (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    head_seq    BIGINT NOT NULL,    -- last sealed seq
    head_hash   TEXT   NOT NULL,
    anchor_seq  BIGINT NOT NULL,    -- rows up to this seq were removed by retention
    anchor_hash TEXT   NOT NULL,    -- the hash of row anchor_seq
    updated_at  BIGINT NOT NULL
);
INSERT INTO audit_seal (id, head_seq, head_hash, anchor_seq, anchor_hash, updated_at) VALUES (1, 0, '', 0, '', 0);
-- Append-only: the data of a row never changes (sealing fills seq and hash once).
CREATE TRIGGER audit_events_append_only BEFORE UPDATE ON audit_events
    WHEN OLD.seq IS NOT NULL OR NEW.at IS NOT OLD.at OR NEW.action IS NOT OLD.action OR NEW.result IS NOT OLD.result
      OR NEW.actor IS NOT OLD.actor OR NEW.patient IS NOT OLD.patient OR NEW.object IS NOT OLD.object OR NEW.detail IS NOT OLD.detail
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only');
END;
