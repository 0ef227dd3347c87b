-- 0007: a receipt is only ever found by its whole primary key, so the table is
-- WITHOUT ROWID: every accepted POST inserts into one b-tree instead of a rowid
-- table plus its primary-key index (one random page less per POST).
CREATE TABLE post_receipts_0007 (
    sender_instance_id BIGINT NOT NULL REFERENCES app_instances(id),
    message_identifier TEXT   NOT NULL,
    request_hash       TEXT   NOT NULL,   -- hex SHA-256 of the request body
    message_id         BIGINT NOT NULL REFERENCES messages(id),
    response_data      TEXT   NOT NULL,   -- the reply's data references, one per line
    created_at         BIGINT NOT NULL,
    PRIMARY KEY (sender_instance_id, message_identifier, request_hash)
) WITHOUT ROWID;
INSERT INTO post_receipts_0007 SELECT sender_instance_id, message_identifier, request_hash, message_id,
    response_data, created_at FROM post_receipts;
DROP TABLE post_receipts;
ALTER TABLE post_receipts_0007 RENAME TO post_receipts;
