-- 0004: receipts of accepted POSTs, so a sender that retries a POST whose reply
-- it lost (same MessageHeader.identifier, byte-identical body) gets the original
-- reply instead of a version conflict or a second message.
CREATE TABLE post_receipts (
    sender_instance_id BIGINT NOT NULL REFERENCES app_instances(id),
    message_identifier TEXT   NOT NULL,
    request_hash       TEXT   NOT NULL,   -- hex SHA-256 of the request body
    message_id         BIGINT NOT NULL REFERENCES messages(id),
    response_data      TEXT   NOT NULL,   -- the reply's data references, one per line
    created_at         BIGINT NOT NULL,
    PRIMARY KEY (sender_instance_id, message_identifier, request_hash)
);
