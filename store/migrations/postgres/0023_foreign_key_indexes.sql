-- 0023: an index on each foreign key that points at rows the server deletes. For every deleted row the database
-- looks for rows still referencing it; without an index on the referencing column that is a scan of the whole
-- table. messages.body_id: removing a message body (retention, or every recipient reported Success) scanned every
-- message — 4.7 ms and ~680 pages per removal in a 30 s load run on PostgreSQL, and a removal run over 500,000
-- due messages did not finish. Partial, because most messages' bodies are removed in time. The OAuth keys: the
-- clean-up of expired launches scanned all codes and tokens. store/fkindex_test.go keeps this true.
CREATE INDEX messages_body ON messages (body_id) WHERE body_id IS NOT NULL;
CREATE INDEX oauth_codes_launch ON oauth_codes (launch_id);
CREATE INDEX oauth_tokens_launch ON oauth_tokens (launch_id);
