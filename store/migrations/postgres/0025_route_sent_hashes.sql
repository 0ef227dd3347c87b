-- 0025: change detection (a route's skip_unchanged). Per route, output and record key, the hash of the
-- content last accepted for that output, so an unchanged record from a later export is not sent again.
CREATE TABLE route_sent_hashes (
	route TEXT NOT NULL,
	output TEXT NOT NULL,
	record_key TEXT NOT NULL,
	hash TEXT NOT NULL,
	updated_at BIGINT NOT NULL,
	PRIMARY KEY (route, output, record_key)
);
