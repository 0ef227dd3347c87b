-- 0027: every queue entry carries its message's MessageHeader.identifier (the sender's UUID), copied when it is
-- queued like domain, event, patient, focal resource and created_at, so that the claim path can tell a cached
-- message from another one under the same message id: a database that lost its last transactions (a failover to
-- an asynchronous standby, a restore) hands those ids to other messages (issue 15). Entries queued before keep ''
-- (the message cache then checks the other copied fields only). A constant default: no table rewrite, on
-- SQLite (ADD COLUMN only edits the schema) nor on PostgreSQL (11 and later keep the default in the catalog).
ALTER TABLE queue ADD COLUMN message_identifier TEXT NOT NULL DEFAULT '';
