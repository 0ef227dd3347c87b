-- 0005: ReplaceOlder looks for an instance's still-open entries (not Success, not
-- ReplacedByNewVersion) of the same focal resource and event on every posted
-- message. The full index made it visit the whole history of that resource, which
-- grows with every update; the partial index holds only the open entries, so the
-- lookup stays flat however long the server runs.
CREATE INDEX queue_replace_open ON queue (instance_id, focal_ref, event)
    WHERE status NOT IN ('Success', 'ReplacedByNewVersion');
DROP INDEX queue_replace;
