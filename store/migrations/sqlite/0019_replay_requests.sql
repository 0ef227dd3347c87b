-- 0019: `koppelpoort replay` asks a running server to replay dead letters instead of publishing them
-- itself: it sets replay_requested_at (Unix µs); the server holding the route-replay lease reloads its
-- route files and replays them, which clears it (so does the dead letter coming back).
ALTER TABLE route_dead_letters ADD COLUMN replay_requested_at BIGINT;
