-- 0012: MessageHeader/_search?identifier=<MessageHeader.identifier> (Koppeltaal 1.1.0 "search by identifier";
-- clients notified by a webhook get the identifier in KoppeltaalMessageIdentifier and look the message up).
-- The messages with that identifier are one index seek, and the caller's queue row of each another,
-- instead of a walk over the caller's whole mailbox.
CREATE INDEX messages_identifier ON messages (message_identifier);
CREATE INDEX queue_message ON queue (message_id);
