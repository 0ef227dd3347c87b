-- 0028: large values are compressed with lz4 instead of PostgreSQL's default
-- pglz. A message body (a 15-19 KB CarePlan bundle) is compressed by TOAST in
-- the accept statement, on the database's CPU, for every POST: pglz took ~150 µs
-- of it per body, lz4 ~25 µs, for 4.0 instead of 2.7 KB stored (5,000 inserts of
-- loadtest/testdata/golden/careplan.json each way in psql; docs/operations.md,
-- "PostgreSQL settings we recommend"). Reading back is faster too. Only new
-- values are written with lz4; stored ones keep pglz and read as before.
-- lz4 needs PostgreSQL 14 or later built with it (every PGDG and distribution
-- package is); elsewhere the columns keep the default, nothing fails.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_settings WHERE name = 'default_toast_compression' AND 'lz4' = ANY (enumvals)) THEN
        EXECUTE 'ALTER TABLE message_bodies ALTER COLUMN body SET COMPRESSION lz4';
        EXECUTE 'ALTER TABLE resources ALTER COLUMN content SET COMPRESSION lz4';
        EXECUTE 'ALTER TABLE storage_items ALTER COLUMN content SET COMPRESSION lz4';
        EXECUTE 'ALTER TABLE activity_definition_versions ALTER COLUMN content SET COMPRESSION lz4';
        EXECUTE 'ALTER TABLE http_log ALTER COLUMN request_body SET COMPRESSION lz4';
        EXECUTE 'ALTER TABLE http_log ALTER COLUMN response_body SET COMPRESSION lz4';
    END IF;
END
$$;
