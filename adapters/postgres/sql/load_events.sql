-- One stream after a position, in order: a range scan of the primary key.
-- The payload comes back as the stored text, parsed once on our side.
SELECT sequence, event_type, event_version, payload::text AS payload
FROM events
WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence > $3
ORDER BY sequence
