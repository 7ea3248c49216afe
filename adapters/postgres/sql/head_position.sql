-- The newest position read_all.sql can reach now: the last committed row.
SELECT COALESCE(
    (SELECT position FROM events
     WHERE aggregate_type = $1
     ORDER BY position DESC
     LIMIT 1), 0)
