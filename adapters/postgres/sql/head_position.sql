-- The newest position read_all.sql can reach now: the last row below the
-- oldest transaction still in flight (ADR 0009). It walks the position
-- index backwards, past the few rows whose transactions are still running.
SELECT COALESCE(
    (SELECT position FROM events
     WHERE aggregate_type = $1
       AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
     ORDER BY position DESC
     LIMIT 1), 0)
