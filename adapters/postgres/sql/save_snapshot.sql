-- Saves a snapshot if it is newer than the newest one kept, and drops the
-- older ones: one statement, so readers never see zero or two of them.
-- $1 aggregate_type  $2 aggregate_id  $3 sequence  $4 payload (JSON text)
WITH newest AS (
    SELECT coalesce(max(last_sequence), -1) AS last_sequence
    FROM snapshots
    WHERE aggregate_type = $1 AND aggregate_id = $2
),
saved AS (
    INSERT INTO snapshots (aggregate_type, aggregate_id, last_sequence, current_snapshot, payload)
    SELECT $1, $2, $3, $3, $4::json
    WHERE (SELECT last_sequence FROM newest) < $3
    -- A concurrent save of the same sequence holds the same state.
    ON CONFLICT DO NOTHING
    RETURNING last_sequence
)
DELETE FROM snapshots
WHERE aggregate_type = $1 AND aggregate_id = $2 AND last_sequence < $3
  AND EXISTS (SELECT 1 FROM saved)
