-- 0024: webhook notifications are deliveries of the built-in Koppeltaal route's output "webhook", worked off
-- by the route worker like any route output (one lease, backoff and dead-letter mechanism). The webhook
-- deliveries still waiting move over with their attempts and last error (payload and record as
-- koppeltaal/notify writes them); finished ones go, as the old hourly purge would have taken them.
INSERT INTO route_deliveries (id, route, output, record_key, payload, record, status, attempts, next_attempt_at,
	last_error, revision, failed_since, attempt_log, created_at, updated_at)
SELECT 'webhook-' || CAST(queue_id AS TEXT), 'koppeltaal', 'webhook', CAST(queue_id AS TEXT),
	'{"Route":"koppeltaal","Output":"webhook","RecordKey":"' || CAST(queue_id AS TEXT) || '","IdempotencyKey":"webhook-' ||
		CAST(queue_id AS TEXT) || '","Fields":{"instance_id":"' || CAST(instance_id AS TEXT) || '","queue_id":"' ||
		CAST(queue_id AS TEXT) || '"}}',
	'{"key":"' || CAST(queue_id AS TEXT) || '","fields":{"instance_id":"' || CAST(instance_id AS TEXT) ||
		'","queue_id":"' || CAST(queue_id AS TEXT) || '"}}',
	'pending', attempts, next_attempt_at, last_error, 'builtin', CASE WHEN attempts > 0 THEN updated_at ELSE 0 END, '[]',
	created_at, updated_at
FROM webhook_deliveries WHERE status = 'pending'
ON CONFLICT (id) DO NOTHING;
DROP TABLE webhook_deliveries;
