-- Every stream's events after global position $2, in position order, at most
-- $3 of them, for aggregate type $1. Only rows whose transaction is older than
-- the oldest one still in flight: a later commit can then never land behind
-- the reader (migration 0006, ADR 0009).
SELECT position, aggregate_id, sequence, event_type, event_version, payload::text AS payload
FROM events
WHERE aggregate_type = $1
  AND position > $2
  AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
ORDER BY position
LIMIT $3
