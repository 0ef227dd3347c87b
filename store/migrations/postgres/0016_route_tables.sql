-- 0016: the gateway's route tables join the store's migrations. Before, the route runtime created them
-- itself at start (CREATE TABLE IF NOT EXISTS kp_gateway_*, on a second connection). A database that
-- has them keeps their rows: they are created here in that old layout only when missing, then renamed,
-- so dead letters, checkpoints, outcomes and pending deliveries carry over.
CREATE TABLE IF NOT EXISTS kp_gateway_deliveries (
	id TEXT PRIMARY KEY,
	route TEXT NOT NULL,
	output TEXT NOT NULL,
	record_key TEXT NOT NULL,
	payload TEXT NOT NULL,
	record TEXT NOT NULL,
	status TEXT NOT NULL,
	attempts INTEGER NOT NULL DEFAULT 0,
	next_attempt_at BIGINT NOT NULL,
	last_error TEXT NOT NULL DEFAULT '',
	created_at BIGINT NOT NULL,
	updated_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS kp_gateway_dead_letters (
	id TEXT PRIMARY KEY,
	route TEXT NOT NULL,
	stage TEXT NOT NULL,
	output TEXT NOT NULL DEFAULT '',
	record_key TEXT NOT NULL,
	record TEXT NOT NULL,
	reason TEXT NOT NULL,
	attempts INTEGER NOT NULL DEFAULT 0,
	created_at BIGINT NOT NULL,
	replayed_at BIGINT
);
CREATE TABLE IF NOT EXISTS kp_gateway_checkpoints (
	route TEXT NOT NULL,
	name TEXT NOT NULL,
	value TEXT NOT NULL,
	updated_at BIGINT NOT NULL,
	PRIMARY KEY (route, name)
);
CREATE TABLE IF NOT EXISTS kp_gateway_outcomes (
	id TEXT PRIMARY KEY,
	route TEXT NOT NULL,
	record TEXT NOT NULL,
	delivery_ids TEXT NOT NULL,
	state TEXT NOT NULL,
	ok INTEGER NOT NULL DEFAULT 0,
	reason TEXT NOT NULL DEFAULT '',
	created_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS kp_gateway_resource_versions (
	scope TEXT NOT NULL,
	url TEXT NOT NULL,
	version TEXT NOT NULL,
	updated_at BIGINT NOT NULL,
	PRIMARY KEY (scope, url)
);
DROP INDEX IF EXISTS kp_gateway_deliveries_due;
DROP INDEX IF EXISTS kp_gateway_dead_letters_route;
DROP INDEX IF EXISTS kp_gateway_outcomes_state;
ALTER TABLE kp_gateway_deliveries RENAME TO route_deliveries;
ALTER TABLE kp_gateway_dead_letters RENAME TO route_dead_letters;
ALTER TABLE kp_gateway_checkpoints RENAME TO route_checkpoints;
ALTER TABLE kp_gateway_outcomes RENAME TO route_outcomes;
-- Only remote Koppeltaal outputs keep versions of their own; a local one reads the store's.
ALTER TABLE kp_gateway_resource_versions RENAME TO route_remote_versions;
-- The route revision (a hash of the route file) that produced a delivery or dead letter.
ALTER TABLE route_deliveries ADD COLUMN revision TEXT NOT NULL DEFAULT '';
ALTER TABLE route_dead_letters ADD COLUMN revision TEXT NOT NULL DEFAULT '';
CREATE INDEX route_deliveries_due ON route_deliveries (route, status, next_attempt_at);
CREATE INDEX route_dead_letters_route ON route_dead_letters (route, replayed_at);
CREATE INDEX route_outcomes_state ON route_outcomes (route, state);
