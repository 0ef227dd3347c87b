-- 0013: the console's message browser (issue 13). Every search is an index seek
-- within a domain (or an instance) in id order, never a scan of all messages:
-- by patient, event, message identifier, sender, recipient (queue_instance,
-- queue_claim) or just the newest. The identifier search and a message's
-- recipients use messages_identifier and queue_message (migration 0012).
-- status_history keeps each recipient's status changes ("<µs> <status>;" per
-- change, appended by the statement that changes the status).
CREATE INDEX messages_domain ON messages (domain_id, id);
CREATE INDEX messages_patient ON messages (domain_id, patient_ref, id);
CREATE INDEX messages_event ON messages (domain_id, event, id);
CREATE INDEX messages_sender ON messages (sender_instance_id, id);
ALTER TABLE queue ADD COLUMN status_history TEXT NOT NULL DEFAULT '';
