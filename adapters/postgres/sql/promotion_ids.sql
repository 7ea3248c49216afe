-- Every aggregate id of one type, as a "loose index scan": one primary-key
-- probe per promotion instead of reading every event (PostgreSQL 15 has no
-- skip scan of its own).
WITH RECURSIVE ids AS (
    (SELECT aggregate_id FROM events WHERE aggregate_type = $1 ORDER BY aggregate_id LIMIT 1)
    UNION ALL
    SELECT (SELECT e.aggregate_id
            FROM events e
            WHERE e.aggregate_type = $1 AND e.aggregate_id > ids.aggregate_id
            ORDER BY e.aggregate_id
            LIMIT 1)
    FROM ids
    WHERE ids.aggregate_id IS NOT NULL
)
SELECT aggregate_id FROM ids WHERE aggregate_id IS NOT NULL
