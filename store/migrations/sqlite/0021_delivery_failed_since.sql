-- 0021: when a waiting delivery first failed (Unix µs; 0 = it has not failed). /readyz and the route gauges
-- tell an output that has been failing for a while from one whose deliveries merely wait in a backlog.
ALTER TABLE route_deliveries ADD COLUMN failed_since BIGINT NOT NULL DEFAULT 0;
-- The waiting deliveries per route and output, without reading the delivered ones.
CREATE INDEX route_deliveries_waiting ON route_deliveries (route, output, created_at) WHERE status IN ('pending', 'inflight');
