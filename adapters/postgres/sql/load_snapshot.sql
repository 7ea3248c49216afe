-- The newest snapshot of one aggregate.
SELECT last_sequence, payload::text AS payload
FROM snapshots
WHERE aggregate_type = $1 AND aggregate_id = $2
ORDER BY last_sequence DESC
LIMIT 1
