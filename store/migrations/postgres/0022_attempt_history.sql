-- 0022: the attempt history of a delivery (JSON list of {"at": Unix µs, "error": "..."}, one per failed
-- attempt, the last 50 kept), carried into its dead letter, so `replay --id` shows how it failed over time.
ALTER TABLE route_deliveries ADD COLUMN attempt_log TEXT NOT NULL DEFAULT '[]';
ALTER TABLE route_dead_letters ADD COLUMN attempt_log TEXT NOT NULL DEFAULT '[]';
