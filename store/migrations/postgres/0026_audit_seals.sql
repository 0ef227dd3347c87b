-- 0026: a record of the audit trail is written once, in the transaction of its
-- action. Until 0025 the sealer then updated every record with its place in the
-- hash chain (seq, hash): a second write of each row, with new entries in all its
-- indexes. Now the sealer writes one row per batch into audit_seals: the ids it
-- seals (as ranges), a 16-byte HMAC of each record, and the chain hash over the
-- previous seal's hash and all of that. Records sealed before keep their seq and
-- hash (the per-record chain up to legacy_seq); the first seal chains on to its
-- last hash. Positions count records through both.
CREATE TABLE audit_seals (
    seq       BIGINT PRIMARY KEY,  -- 1, 2, ... in chain order
    last_pos  BIGINT NOT NULL,     -- chain position of its last record
    ids       TEXT   NOT NULL,     -- the record ids, ascending, as ranges: "7-2006,2010"
    digests   BYTEA  NOT NULL,     -- 16 bytes per record in the order of ids: HMAC-SHA-256 of the record, cut
    hash      TEXT   NOT NULL,     -- hex HMAC-SHA-256 of the previous hash, seq, last_pos, ids and digests
    sealed_at BIGINT NOT NULL
);
ALTER TABLE audit_seal ADD COLUMN legacy_seq BIGINT NOT NULL DEFAULT 0;      -- the per-record chain ends here
ALTER TABLE audit_seal ADD COLUMN legacy_hash TEXT NOT NULL DEFAULT '';
ALTER TABLE audit_seal ADD COLUMN seal_seq BIGINT NOT NULL DEFAULT 0;        -- the last seal
ALTER TABLE audit_seal ADD COLUMN seal_anchor_seq BIGINT NOT NULL DEFAULT 0; -- seals up to this one were removed by retention
ALTER TABLE audit_seal ADD COLUMN seal_anchor_hash TEXT NOT NULL DEFAULT '';
ALTER TABLE audit_seal ADD COLUMN sealed_to BIGINT NOT NULL DEFAULT 0;       -- every record above this id is unsealed
ALTER TABLE audit_seal ADD COLUMN gaps TEXT NOT NULL DEFAULT '';             -- ids up to sealed_to not committed when the sealer passed: "from-to@µs first seen,..."
UPDATE audit_seal SET legacy_seq = head_seq, legacy_hash = head_hash,
    sealed_to = COALESCE((SELECT MAX(id) FROM audit_events WHERE seq IS NOT NULL), 0);
UPDATE audit_seal SET gaps = COALESCE((SELECT string_agg(id || '-' || id || '@' || at, ',' ORDER BY id)
    FROM audit_events WHERE seq IS NULL AND id < audit_seal.sealed_to), '');
DROP INDEX audit_events_unsealed;
-- Nothing updates a record any more, nor a seal.
CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END $$;
CREATE TRIGGER audit_seals_append_only BEFORE UPDATE ON audit_seals
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
