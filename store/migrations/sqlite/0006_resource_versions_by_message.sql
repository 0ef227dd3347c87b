-- 0006: a resource version no longer stores its own copy of the resource. The
-- message that issued it (message_id) holds the resource exactly as routed, so
-- the copy doubled what every POST wrote (about 10 KB of a 24 KB CarePlan
-- message) without anyone reading it. The rows are now small and keyed by
-- (resource_id, version) alone, so the table is WITHOUT ROWID: one b-tree
-- instead of a rowid table plus its primary-key index.
CREATE TABLE resource_versions_0006 (
    resource_id BIGINT NOT NULL REFERENCES resources(id),
    version     TEXT   NOT NULL,
    message_id  BIGINT REFERENCES messages(id),
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (resource_id, version)
) WITHOUT ROWID;
INSERT INTO resource_versions_0006 (resource_id, version, message_id, created_at)
    SELECT resource_id, version, message_id, created_at FROM resource_versions;
DROP TABLE resource_versions;
ALTER TABLE resource_versions_0006 RENAME TO resource_versions;
