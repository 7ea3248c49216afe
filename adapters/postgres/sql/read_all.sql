-- Every stream's events after global position $2, in position order, at most
-- $3 of them, for aggregate type $1. Inserts into `events` run one
-- transaction at a time (migration 0008, ADR 0011), so every committed
-- position below a visible one is visible too: nothing can appear behind
-- the reader later.
-- With each event's traceparent, if its command was traced (migration 0013).
SELECT position, aggregate_id, sequence, event_type, event_version, payload::text AS payload,
       metadata->>'traceparent' AS traceparent
FROM events
WHERE aggregate_type = $1
  AND position > $2
ORDER BY position
LIMIT $3
