-- Positions in commit order (ADR 0011, which replaces the reading rule of
-- ADR 0009).
--
-- Reading below the oldest transaction in flight (migration 0006) is not
-- enough: a transaction that took its id early (a batch of many rows, or a
-- statement before its insert) can take positions *after* a younger
-- transaction did, commit first, and be read; the younger one's lower
-- positions then appear behind the reader. So every statement that inserts
-- into `events` first takes one transaction-level advisory lock, held until
-- its transaction ends: inserts into `events` run one transaction at a time,
-- a position is taken only after every earlier inserter committed or rolled
-- back, and "position > last" never skips. A statement trigger, so every
-- writer takes it, postgres-es's own inserts included.
--
-- The lock is per database (advisory locks carry the database's id). Appends
-- of one promotion were sequential already (one writer); appends of
-- different promotions now queue for the lock, which the engine's group
-- commit across promotions (one transaction for many) is meant to amortize.
CREATE OR REPLACE FUNCTION seckill_events_in_commit_order() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- 'seckill events' as a 64-bit key: any constant no other tool uses.
    PERFORM pg_advisory_xact_lock(7738145395240370547);
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS events_in_commit_order ON events;
CREATE TRIGGER events_in_commit_order
    BEFORE INSERT ON events
    FOR EACH STATEMENT
    EXECUTE FUNCTION seckill_events_in_commit_order();
