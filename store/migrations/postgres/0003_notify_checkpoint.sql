-- 0003: start the webhook dispatcher's checkpoint at the current end of the
-- queue, in the same migration run that creates nothing else: messages queued
-- from now on are notified (also those posted before the dispatcher's first
-- scan); history from before webhooks existed is not.
INSERT INTO notify_checkpoints (name, last_id) SELECT 'webhooks', COALESCE(MAX(id), 0) FROM queue;
