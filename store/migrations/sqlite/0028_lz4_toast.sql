-- 0028: on PostgreSQL, large values are compressed with lz4 instead of pglz
-- (see migrations/postgres/0028). Nothing to do on SQLite: message bodies are
-- compressed with zstd by the store itself (bodies.go), and SQLite does not
-- compress values.
SELECT 1;
