-- 0006: a resource version no longer stores its own copy of the resource. The
-- message that issued it (message_id) holds the resource exactly as routed, so
-- the copy doubled what every POST wrote without anyone reading it.
ALTER TABLE resource_versions DROP COLUMN content;
