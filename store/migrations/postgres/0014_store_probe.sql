-- 0014: one row that /readyz rewrites when the store made no commit for a few
-- seconds (or its last commit failed), to learn whether it can commit at all:
-- a read-only file system, a full disk or a PostgreSQL standby still answer reads.
CREATE TABLE store_probe (
    id         INTEGER NOT NULL PRIMARY KEY,
    written_at BIGINT  NOT NULL
);
