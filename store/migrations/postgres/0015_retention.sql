-- 0015: automatic data removal (SPEC.md §10). A message whose body is removed
-- keeps its row (is_expired, body_id NULL), so recipients still see that it
-- existed; its queue entries carry is_expired too, so claims and searches leave
-- them out with one index seek. The resource store outlives the bodies: before
-- a body goes, the current content of each resource it holds is copied into
-- resources.content (NULL while the content lives in the issuing message's body).
ALTER TABLE queue ADD COLUMN is_expired BOOLEAN NOT NULL DEFAULT FALSE;
-- The claim's seek: an instance's waiting entries that are not expired, oldest
-- first. Partial, so it holds only what waits (an offline instance's expired
-- entries are not walked by every claim); queue_claim stays for the rest.
CREATE INDEX queue_claim_live ON queue (instance_id, id) WHERE status = 'New' AND is_expired = FALSE;
ALTER TABLE resources ADD COLUMN content BYTEA;
CREATE INDEX messages_retained ON messages (created_at, id) WHERE is_expired = FALSE;

CREATE TABLE domain_message_settings (
    domain_id         BIGINT  NOT NULL REFERENCES domains(id),
    event             TEXT    NOT NULL,
    max_age_days      INTEGER NOT NULL DEFAULT 0,
    retain_on_success BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (domain_id, event)
);
CREATE TABLE application_message_settings (
    application_id      BIGINT  NOT NULL REFERENCES applications(id),
    event               TEXT    NOT NULL,
    retainment_required BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (application_id, event)
);

-- Space comes back: removed bodies leave dead tuples (mostly in TOAST) and
-- expiry updates rewrite message and queue rows. Vacuum these tables after 2 %
-- dead rows instead of 20 %, so freed space is reused before the tables grow.
ALTER TABLE message_bodies SET (autovacuum_vacuum_scale_factor = 0.02, toast.autovacuum_vacuum_scale_factor = 0.02);
ALTER TABLE messages SET (autovacuum_vacuum_scale_factor = 0.02);
ALTER TABLE queue SET (autovacuum_vacuum_scale_factor = 0.02);
