-- 0007: SQLite's post_receipts became WITHOUT ROWID (a storage layout PostgreSQL
-- does not have); the schema versions of both dialects stay in step.
SELECT 1;
