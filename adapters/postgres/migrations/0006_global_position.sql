-- A global order over every event (docs/events.md): `position` numbers the
-- rows as they are inserted, across all streams; `transaction_id` is the
-- inserting transaction, so a reader can wait for the ones still in flight.
--
-- A position is taken at insert, but transactions commit in any order: the
-- row at position 7 may become visible after the one at 8. A reader that
-- advanced past 8 would never see 7. So readers take only rows whose
-- transaction is older than every transaction still running
-- (`transaction_id < pg_snapshot_xmin(pg_current_snapshot())`, ADR 0009):
-- below that line nothing can appear any more, and the order is final.
--
-- IF NOT EXISTS, and defaults for both: postgres-es's own inserts, which name
-- only its seven columns, get a position and a transaction too.
ALTER TABLE events ADD COLUMN IF NOT EXISTS position bigint GENERATED ALWAYS AS IDENTITY;
ALTER TABLE events ADD COLUMN IF NOT EXISTS transaction_id xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE UNIQUE INDEX IF NOT EXISTS events_by_position ON events (position);
