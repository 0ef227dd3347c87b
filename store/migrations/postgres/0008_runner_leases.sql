-- 0008: leases of background jobs that must run in one process at a time among
-- all processes sharing the database (store.RunExclusive): the claim sweeper,
-- retention, webhook delivery. A row is held by one process until expires_at
-- (Unix µs, database clock); its holder renews it while the job runs.
CREATE TABLE runner_leases (
    name        TEXT   NOT NULL PRIMARY KEY,
    holder      TEXT   NOT NULL,   -- host:pid:random of the process running the job
    acquired_at BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
